"""Alert notifications end to end: channels chosen per alert, one row per transition, delivery to a local
sink per kind (Slack, PagerDuty, signed webhook, email), retries, the per-channel rate limit, no
credential in errors or logs, the admin, and once through a real Celery worker process."""

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cutover.webhooks import SIGNATURE_HEADER, verify
from migrations_app import tasks
from migrations_app.models import Alert, AuditEvent, MigrationPlan, Notification, NotificationChannel
from migrations_app.services import notifications as service
from migrations_app.services.notifications import (
    DeliveryFailed,
    NotificationDeferred,
    alert_notify,
    channel_create,
    notification_send,
)
from tests import factories
from tests.support.http_sink import HttpSink
from tests.support.processes import log_tail, start_celery, stop

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefSECRET"
SIGNING_SECRET = "whsec_SIGNING0123456789abcdefSECRET"
SLACK_TOKEN_PATH = "/services/T0SECRET/B0SECRET/SLACKTOKENSECRET0123"


class Clock:
    """The rate limit's clock: moves on a whole second per reading unless `step` is 0 (one fixed second)."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0
        self.step = 1.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(service, "_clock", fake)
    return fake


@pytest.fixture
def sink():
    with HttpSink() as running:
        yield running


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    """The ids alert_notify hands to the Celery task (captured instead of reaching the broker)."""
    ids: list[int] = []
    monkeypatch.setattr(tasks.notification_send, "delay", ids.append)
    return ids


def make_alert(plan: MigrationPlan, **overrides) -> Alert:
    now = timezone.now()
    fields = dict(
        name="ERROR_RATE_HIGH", severity="critical", action="alert",
        dedup_key=f"cutover/{plan.key}/ERROR_RATE_HIGH/{now.timestamp():.6f}",
        summary=f"{plan.key}: error rate 4.1 % vs 1.0 % (ratio 4.1 > 1.5)", metric="error_rate",
        observed=0.041, baseline=0.01, evidence={"samples": [5000, 5100], "p_value": 0.0001},
        first_seen=now, last_seen=now,
    )
    return Alert.objects.create(plan=plan, **(fields | overrides))


def make_channel(kind: str, *, name: str | None = None, environment: str | None = "prod",
                 plan: MigrationPlan | None = None, min_severity: str = "info", **config) -> NotificationChannel:
    return channel_create(
        actor="test", name=name or f"{kind}-{NotificationChannel.objects.count()}", kind=kind,
        environment=None if plan else factories.make_environment(environment), plan=plan, config=config,
        min_severity=min_severity,
    )


def slack(sink: HttpSink, **kw) -> NotificationChannel:
    return make_channel("slack", url=sink.url_for(SLACK_TOKEN_PATH), **kw)


def pagerduty(sink: HttpSink, **kw) -> NotificationChannel:
    return make_channel("pagerduty", routing_key=ROUTING_KEY, events_url=sink.url_for("/v2/enqueue"), **kw)


def webhook(sink: HttpSink, **kw) -> NotificationChannel:
    return make_channel("webhook", url=sink.url_for("/hooks/cutover"), signing_secret=SIGNING_SECRET, **kw)


def notify(alert: Alert, event: str, django_capture_on_commit_callbacks) -> list[Notification]:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        return alert_notify(alert=alert, event=event)


def send_until_done(notification: Notification, *, limit: int = 20) -> Notification:
    """What the task does, without the waiting: send, and again after each failed attempt."""
    for _ in range(limit):
        try:
            notification_send(notification_id=notification.pk)
        except DeliveryFailed as failed:
            if failed.final:
                break
            continue
        notification.refresh_from_db()
        if notification.status != "pending":
            break
    notification.refresh_from_db()
    return notification


# --- which channels, how many rows ----------------------------------------------------------------------

@pytest.mark.django_db
def test_alert_notify__one_pending_notification_per_channel__each_enqueued_once_after_commit(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    channels = [slack(sink), pagerduty(sink), webhook(sink)]
    alert = make_alert(plan)

    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        created = alert_notify(alert=alert, event="trigger")
        assert enqueued == []  # nothing leaves before the alert's transaction commits
    for callback in callbacks:
        callback()

    assert sorted(n.channel_id for n in created) == sorted(c.pk for c in channels)
    assert {(n.event, n.status, n.attempts) for n in created} == {("trigger", "pending", 0)}
    assert sorted(enqueued) == sorted(n.pk for n in created)


@pytest.mark.django_db
def test_alert_notify__called_twice_for_one_transition__one_notification_enqueued_once(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    slack(sink)
    alert = make_alert(plan)

    first = notify(alert, "trigger", django_capture_on_commit_callbacks)
    second = notify(alert, "trigger", django_capture_on_commit_callbacks)

    assert [n.pk for n in first] == [n.pk for n in second]
    assert Notification.objects.filter(alert=alert).count() == 1
    assert enqueued == [first[0].pk]


@pytest.mark.django_db
def test_alert_notify__channel_minimum_severity__only_channels_the_alert_reaches(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    info, warning, critical = (slack(sink, name=f"slack-{level}", min_severity=level)
                               for level in ("info", "warning", "critical"))

    chosen = notify(make_alert(plan, severity="warning"), "trigger", django_capture_on_commit_callbacks)

    assert sorted(n.channel_id for n in chosen) == sorted([info.pk, warning.pk])


@pytest.mark.django_db
def test_alert_notify__rollback_alert__critical_so_every_channel_hears_it(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    critical_only = slack(sink, min_severity="critical")
    rollback = make_alert(plan, name="PLAN_ROLLED_BACK", severity="warning", action="rollback", metric="")

    chosen = notify(rollback, "trigger", django_capture_on_commit_callbacks)

    assert [n.channel_id for n in chosen] == [critical_only.pk]


@pytest.mark.django_db
def test_alert_notify__channels_of_another_environment_another_plan_or_disabled__not_used(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    environment_wide = slack(sink, name="prod-wide")
    own_plan = slack(sink, name="own-plan", plan=plan)
    slack(sink, name="staging-wide", environment="staging")
    slack(sink, name="other-plan", plan=factories.make_plan("billing-bot"))
    disabled = slack(sink, name="disabled")
    NotificationChannel.objects.filter(pk=disabled.pk).update(enabled=False)

    chosen = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    assert sorted(n.channel_id for n in chosen) == sorted([environment_wide.pk, own_plan.pk])


@pytest.mark.django_db
def test_alert_notify__resolve__also_reaches_channels_told_of_the_trigger_whose_threshold_was_raised(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    channel = pagerduty(sink, min_severity="warning")
    alert = make_alert(plan, severity="warning")
    notify(alert, "trigger", django_capture_on_commit_callbacks)
    NotificationChannel.objects.filter(pk=channel.pk).update(min_severity="critical")

    resolved = notify(alert, "resolve", django_capture_on_commit_callbacks)

    assert [(n.channel_id, n.event) for n in resolved] == [(channel.pk, "resolve")]


@pytest.mark.django_db
def test_alert_notify__unknown_event__refused(plan, enqueued):
    with pytest.raises(ValueError):
        alert_notify(alert=make_alert(plan), event="acknowledge")


# --- delivery per kind ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_slack__text_and_blocks_posted_to_the_webhook_url__marked_sent(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    slack(sink)
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    notification_send(notification_id=notification.pk)

    [request] = sink.wait_for(1)
    assert (request.method, request.path) == ("POST", SLACK_TOKEN_PATH)
    assert request.header("content-type") == "application/json"
    body = request.json()
    assert "CRITICAL ERROR_RATE_HIGH support-bot" in body["text"] and body["blocks"][0]["type"] == "header"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == ("sent", 1, "")
    assert notification.sent_at is not None


@pytest.mark.django_db
def test_pagerduty__trigger_then_resolve__same_dedup_key_and_events_api_v2_bodies(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    pagerduty(sink)
    sink.respond_with(202, 202, body=b'{"status":"success"}')
    alert = make_alert(plan)
    [trigger] = notify(alert, "trigger", django_capture_on_commit_callbacks)
    notification_send(notification_id=trigger.pk)
    alert.state, alert.resolved_at = "resolved", timezone.now()
    alert.save()
    [resolve] = notify(alert, "resolve", django_capture_on_commit_callbacks)
    notification_send(notification_id=resolve.pk)

    sent_trigger, sent_resolve = (request.json() for request in sink.wait_for(2))
    assert sink.requests[0].path == "/v2/enqueue"
    assert sent_trigger["event_action"] == "trigger" and sent_resolve["event_action"] == "resolve"
    assert sent_trigger["dedup_key"] == sent_resolve["dedup_key"] == alert.dedup_key
    assert sent_trigger["routing_key"] == sent_resolve["routing_key"] == ROUTING_KEY
    payload = sent_trigger["payload"]
    assert (payload["source"], payload["severity"], payload["component"], payload["group"]) == (
        "cutover", "critical", "support-bot", "prod")
    assert payload["custom_details"]["observed"] == 0.041 and payload["custom_details"]["plan"] == "support-bot"
    assert set(sent_resolve) == {"routing_key", "event_action", "dedup_key"}
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_webhook__signed_body_verifies_with_the_sdk__and_fails_when_tampered_or_old(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    webhook(sink)
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    notification_send(notification_id=notification.pk)

    [request] = sink.wait_for(1)
    header = request.header(SIGNATURE_HEADER)
    assert header and header.startswith("t=") and ",v1=" in header
    assert verify(request.body, header, SIGNING_SECRET)
    assert not verify(request.body.replace(b"ERROR_RATE_HIGH", b"ALL_QUIET"), header, SIGNING_SECRET)
    assert not verify(request.body, header, SIGNING_SECRET, now=time.time() + 3600)
    body = request.json()
    assert body["type"] == "alert.trigger" and body["id"] == f"ntf_{notification.pk}"
    assert body["alert"]["name"] == "ERROR_RATE_HIGH" and body["alert"]["plan"] == "support-bot"
    assert request.header("X-Cutover-Event") == "alert.trigger"


@pytest.mark.django_db
def test_email__sent_to_the_channels_addresses_with_a_subject_naming_severity_alert_and_plan(
        plan, enqueued, mailoutbox, django_capture_on_commit_callbacks):
    make_channel("email", to=["oncall@example.com", "ops@example.com"])
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    notification_send(notification_id=notification.pk)

    [message] = mailoutbox
    assert message.subject == "[cutover] CRITICAL ERROR_RATE_HIGH support-bot"
    assert message.to == ["oncall@example.com", "ops@example.com"]
    assert message.from_email == settings.CUTOVER_ALERT_FROM_EMAIL
    assert "error rate 4.1 % vs 1.0 %" in message.body
    notification.refresh_from_db()
    assert notification.status == "sent"


# --- retries, idempotence, the rate limit ---------------------------------------------------------------

@pytest.mark.django_db
def test_receiver_answers_500_twice_then_200__delivered_once_after_three_attempts(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    slack(sink)
    sink.respond_with(500, 500)
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    notification = send_until_done(notification)

    assert [r.status for r in sink.wait_for(3)] == [500, 500, 200]
    assert (notification.status, notification.attempts) == ("sent", 3)
    assert "HTTP 500" in notification.last_error  # why the earlier attempts failed
    notification_send(notification_id=notification.pk)  # a redelivered task
    assert len(sink.requests) == 3


@pytest.mark.django_db
def test_task__retries_through_celery_until_delivered(plan, sink, enqueued, django_capture_on_commit_callbacks,
                                                      settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    webhook(sink)
    sink.respond_with(503, 500)
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    tasks.notification_send.apply(args=[notification.pk])

    notification.refresh_from_db()
    assert (notification.status, notification.attempts, len(sink.requests)) == ("sent", 3, 3)


@pytest.mark.django_db
def test_task__receiver_always_failing__failed_after_the_last_retry_and_no_more_attempts(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    slack(sink)
    sink.respond_with(*[500] * 20)
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    tasks.notification_send.apply(args=[notification.pk])

    notification.refresh_from_db()
    attempts = tasks.notification_send.max_retries + 1
    assert (notification.status, notification.attempts, len(sink.requests)) == ("failed", attempts, attempts)
    assert "HTTP 500" in notification.last_error
    tasks.notification_send.apply(args=[notification.pk])
    assert len(sink.requests) == attempts


@pytest.mark.django_db
def test_receiver_answers_429__retry_honours_retry_after(plan, sink, enqueued, django_capture_on_commit_callbacks):
    pagerduty(sink)
    sink.respond_with(429, headers={"Retry-After": "7"})
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)

    with pytest.raises(DeliveryFailed) as failed:
        notification_send(notification_id=notification.pk)

    assert failed.value.retry_after == 7 and not failed.value.final
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 1)
    assert "HTTP 429" in notification.last_error


@pytest.mark.django_db
def test_two_notifications_to_one_channel_in_the_same_second__second_deferred_not_sent(
        plan, sink, enqueued, clock, django_capture_on_commit_callbacks):
    slack(sink)
    [first] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)
    [second] = notify(make_alert(plan, name="LATENCY_DEGRADED", dedup_key="other"), "trigger",
                      django_capture_on_commit_callbacks)
    clock.step = 0  # both in one second

    notification_send(notification_id=first.pk)
    with pytest.raises(NotificationDeferred) as deferred:
        notification_send(notification_id=second.pk)

    assert 0 < deferred.value.countdown <= 2
    assert len(sink.requests) == 1
    second.refresh_from_db()
    assert (second.status, second.attempts) == ("pending", 0)  # waiting is not an attempt
    clock.step = 1.0  # the next second
    notification_send(notification_id=second.pk)
    assert len(sink.wait_for(2)) == 2


@pytest.mark.django_db
def test_rate_limit__per_channel__two_channels_may_send_in_the_same_second(
        plan, sink, enqueued, clock, django_capture_on_commit_callbacks):
    slack(sink, name="a")
    slack(sink, name="b")
    clock.step = 0
    for notification in notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks):
        notification_send(notification_id=notification.pk)
    assert len(sink.wait_for(2)) == 2


@pytest.mark.django_db(transaction=True)
def test_same_notification_sent_by_two_workers_at_once__one_message(plan, sink, enqueued):
    webhook(sink)
    [notification] = alert_notify(alert=make_alert(plan), event="trigger")
    sink.respond_with(200, delay=0.5)  # hold the first delivery in flight
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            notification_send(notification_id=notification.pk)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    time.sleep(0.2)
    assert len(sink.requests) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)


@pytest.mark.django_db
def test_resolve_while_its_trigger_is_still_retrying__waits_for_the_trigger(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    pagerduty(sink)
    sink.respond_with(500)
    alert = make_alert(plan)
    [trigger] = notify(alert, "trigger", django_capture_on_commit_callbacks)
    with pytest.raises(DeliveryFailed):
        notification_send(notification_id=trigger.pk)
    [resolve] = notify(alert, "resolve", django_capture_on_commit_callbacks)

    with pytest.raises(NotificationDeferred):
        notification_send(notification_id=resolve.pk)
    notification_send(notification_id=trigger.pk)
    notification_send(notification_id=resolve.pk)

    assert [r.json()["event_action"] for r in sink.requests] == ["trigger", "trigger", "resolve"]


@pytest.mark.django_db
def test_trigger_still_pending_after_its_resolve_went_out__not_sent_so_the_incident_stays_closed(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    pagerduty(sink)
    alert = make_alert(plan)
    [trigger] = notify(alert, "trigger", django_capture_on_commit_callbacks)
    [resolve] = notify(alert, "resolve", django_capture_on_commit_callbacks)
    Notification.objects.filter(pk=trigger.pk).update(created_at=timezone.now() - timedelta(hours=1))
    notification_send(notification_id=resolve.pk)  # the trigger looks stuck: the resolve goes anyway

    notification_send(notification_id=trigger.pk)

    assert [r.json()["event_action"] for r in sink.requests] == ["resolve"]
    trigger.refresh_from_db()
    assert trigger.status == "failed" and "resolve reached this channel first" in trigger.last_error


@pytest.mark.django_db
def test_notification_deleted_before_its_task_ran__nothing_sent(enqueued, sink):
    notification_send(notification_id=987654)
    assert sink.requests == []


@pytest.mark.django_db
def test_channel_disabled_before_its_notification_went_out__not_sent(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    channel = slack(sink)
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)
    NotificationChannel.objects.filter(pk=channel.pk).update(enabled=False)

    notification_send(notification_id=notification.pk)

    notification.refresh_from_db()
    assert notification.status == "failed" and sink.requests == []


@pytest.mark.django_db
def test_channel_settings_broken_behind_the_services_back__failed_with_the_reason_and_nothing_sent(
        plan, sink, enqueued, django_capture_on_commit_callbacks):
    channel = pagerduty(sink)
    [notification] = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)
    NotificationChannel.objects.filter(pk=channel.pk).update(config={"events_url": sink.url})

    notification_send(notification_id=notification.pk)

    notification.refresh_from_db()
    assert notification.status == "failed" and "routing_key is required" in notification.last_error
    assert sink.requests == []


# --- credentials stay out of errors and logs ------------------------------------------------------------

@pytest.mark.django_db
def test_failures__no_credential_in_last_error_or_logs(plan, sink, enqueued, caplog,
                                                        django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    secrets = [ROUTING_KEY, SIGNING_SECRET, SLACK_TOKEN_PATH, "SLACKTOKENSECRET0123", "T0SECRET"]
    slack(sink)
    pagerduty(sink)
    webhook(sink)
    # Receivers that echo the request back in their error bodies.
    sink.respond_with(400, body=f"bad request to {SLACK_TOKEN_PATH}".encode())
    sink.respond_with(400, body=f'{{"message":"invalid routing_key {ROUTING_KEY}"}}'.encode())
    sink.respond_with(500, body=f"signature with {SIGNING_SECRET} rejected".encode())
    notifications = notify(make_alert(plan), "trigger", django_capture_on_commit_callbacks)
    for notification in notifications:
        with pytest.raises(DeliveryFailed):
            notification_send(notification_id=notification.pk)
    # And a receiver that cannot be reached at all, at a URL that holds the credential.
    unreachable = make_channel("slack", name="unreachable", url=f"http://127.0.0.1:9{SLACK_TOKEN_PATH}")
    second_alert = make_alert(plan, dedup_key="gone")
    notify(second_alert, "trigger", django_capture_on_commit_callbacks)
    gone = Notification.objects.get(alert=second_alert, channel=unreachable)
    with pytest.raises(DeliveryFailed) as failed:
        notification_send(notification_id=gone.pk)

    errors = list(Notification.objects.filter(attempts__gt=0).values_list("last_error", flat=True))
    assert len(errors) == 4 and all(errors)
    shown = "\n".join(errors) + caplog.text + str(failed.value)
    leaked = [secret for secret in secrets if secret in shown]
    assert leaked == []
    assert "127.0.0.1" in shown  # the errors still say where
    assert "slack at http://127.0.0.1:9: ConnectError" in str(failed.value)


@pytest.mark.django_db
def test_channel_audit__credentials_masked(plan, sink):
    webhook(sink)
    pagerduty(sink)
    slack(sink)
    trail = str(list(AuditEvent.objects.filter(action="channel.created").values_list("after", flat=True)))
    assert ROUTING_KEY not in trail and SIGNING_SECRET not in trail and SLACK_TOKEN_PATH not in trail


# --- the admin ------------------------------------------------------------------------------------------

@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(factories.make_staff_user("alice", superuser=True))
    return client


@pytest.mark.django_db
def test_admin__channel_list_and_change_form__credentials_never_shown(admin_client, plan, sink):
    channels = [slack(sink), pagerduty(sink), webhook(sink)]

    pages = [admin_client.get(reverse("admin:migrations_app_notificationchannel_changelist"))]
    pages += [admin_client.get(reverse("admin:migrations_app_notificationchannel_change", args=[c.pk]))
              for c in channels]

    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert ROUTING_KEY not in html and SIGNING_SECRET not in html and "SLACKTOKENSECRET0123" not in html
    assert "…" + ROUTING_KEY[-4:] in pages[0].content.decode()


@pytest.mark.django_db
def test_admin__add_pagerduty_channel__saved_through_the_service_with_the_key(admin_client, plan):
    response = admin_client.post(reverse("admin:migrations_app_notificationchannel_add"), {
        "name": "pager", "kind": "pagerduty", "environment": factories.make_environment("prod").pk,
        "min_severity": "critical", "enabled": "on", "routing_key": ROUTING_KEY,
    })

    assert response.status_code == 302, response.content.decode()[:3000]
    channel = NotificationChannel.objects.get(name="pager")
    assert channel.config == {"routing_key": ROUTING_KEY}
    assert AuditEvent.objects.filter(action="channel.created", actor="user:alice").exists()


@pytest.mark.django_db
def test_admin__edit_with_secret_left_blank__keeps_the_current_secret(admin_client, plan, sink):
    channel = webhook(sink)
    response = admin_client.post(reverse("admin:migrations_app_notificationchannel_change", args=[channel.pk]), {
        "name": channel.name, "kind": "webhook", "environment": channel.environment_id, "min_severity": "warning",
        "enabled": "on", "webhook_url": sink.url_for("/elsewhere"), "signing_secret": "",
    })

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.config == {"url": sink.url_for("/elsewhere"), "signing_secret": SIGNING_SECRET}
    assert channel.min_severity == "warning"


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "error"), [
    ({"kind": "slack"}, "is required"),
    ({"kind": "webhook", "webhook_url": "https://hooks.example.com", "signing_secret": "short"}, "at least 16"),
    ({"kind": "email", "to": "oncall@example.com, nope"}, "nope is not an email address"),
    ({"kind": "pagerduty", "routing_key": ROUTING_KEY, "plan": "PLAN"}, "not both"),
])
def test_admin__invalid_settings_for_the_kind__refused_with_the_reason(admin_client, plan, data, error):
    posted = {"name": "c", "environment": factories.make_environment("prod").pk, "min_severity": "warning",
              "enabled": "on"} | data
    if posted.get("plan") == "PLAN":
        posted["plan"] = plan.pk
    response = admin_client.post(reverse("admin:migrations_app_notificationchannel_add"), posted)

    assert response.status_code == 200 and error in response.content.decode()
    assert not NotificationChannel.objects.exists()


@pytest.mark.django_db
def test_admin__alerts_and_notifications__read_only_pages(admin_client, plan, sink, enqueued,
                                                          django_capture_on_commit_callbacks):
    pagerduty(sink)
    alert = make_alert(plan)
    [notification] = notify(alert, "trigger", django_capture_on_commit_callbacks)

    for url in (reverse("admin:migrations_app_alert_changelist"),
                reverse("admin:migrations_app_alert_change", args=[alert.pk]),
                reverse("admin:migrations_app_notification_changelist"),
                reverse("admin:migrations_app_notification_change", args=[notification.pk])):
        page = admin_client.get(url)
        assert page.status_code == 200 and ROUTING_KEY not in page.content.decode()
    assert admin_client.get(reverse("admin:migrations_app_alert_add")).status_code == 403


# --- a real Celery worker -------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_real_worker__trigger_committed__reaches_the_sink_signed_and_marked_sent(plan, sink, tmp_path):
    webhook(sink)
    alert = make_alert(plan)
    worker = start_celery("worker", "--pool=solo", "--concurrency=1", log=tmp_path / "worker.log")
    try:
        with transaction.atomic():
            [notification] = alert_notify(alert=alert, event="trigger")
        deadline = time.monotonic() + 60
        while notification.status != "sent" and time.monotonic() < deadline:
            assert worker.poll() is None, log_tail(tmp_path)
            time.sleep(0.1)
            notification.refresh_from_db()
    finally:
        stop(worker)
    assert notification.status == "sent", log_tail(tmp_path)
    [request] = sink.requests
    assert verify(request.body, request.header(SIGNATURE_HEADER), SIGNING_SECRET)
    assert request.json()["alert"]["dedup_key"] == alert.dedup_key
    assert notification.attempts == 1
    log = (tmp_path / "worker.log").read_text()
    assert "migrations_app.tasks.notification_send" in log and SIGNING_SECRET not in log
