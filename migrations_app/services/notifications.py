"""Alert notifications: one row per (alert, channel, transition), sent once by a Celery task.

`alert_notify` runs inside the transaction that fires or resolves an alert: it records a pending
Notification for each channel that should hear about it (idempotently: the unique key makes a second call
a no-op) and, once that transaction commits, enqueues `notification_send` for each new one.

`notification_send` delivers one notification. It locks the row for the delivery, so two workers running
the same task send once; it takes the channel's slot for the current second from the shared cache, so a
channel gets at most one message per second across all workers (a notification that finds the slot taken
is deferred, not counted as an attempt); failures are recorded without credentials and raised for the task
to retry with backoff, and the notification is marked failed after the last attempt.
"""

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from smtplib import SMTPException
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from cutover.webhooks import SIGNATURE_HEADER, sign

from ..domain.notifications import (
    AlertView,
    NotificationEvent,
    NotificationStatus,
    channel_config_problems,
    effective_severity,
    email_content,
    masked_config,
    pagerduty_payload,
    secret_settings,
    severity_at_least,
    slack_payload,
    webhook_payload,
)
from ..models import Alert, ChannelKind, Notification, NotificationChannel
from .audit import audit_record

logger = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 5.0
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# A channel's slot for one second; a notification that finds it taken tries again this much later.
RATE_LIMIT_COUNTDOWN_SECONDS = 1.0
# Longest Retry-After honoured; a receiver asking for more is retried sooner (and may answer 429 again).
MAX_RETRY_AFTER_SECONDS = 600.0
# How long a resolve waits for its trigger (still being retried) before going out anyway.
RESOLVE_WAIT_COUNTDOWN_SECONDS = 5.0
RESOLVE_WAIT_LIMIT = timedelta(minutes=15)
DEFAULT_MAX_ATTEMPTS = 7
_ERROR_MAX_CHARS = 1000
_USER_AGENT = "cutover-notifications/1"

# The clock of the per-second rate limit (tests pin it).
_clock = time.time


class NotificationDeferred(Exception):
    """Not sent yet, and not an attempt: try again in `countdown` seconds (the channel's slot for this
    second is taken, or a resolve waits for its trigger)."""

    def __init__(self, reason: str, *, countdown: float) -> None:
        super().__init__(reason)
        self.countdown = countdown


class DeliveryFailed(Exception):
    """One attempt failed; the message holds no credential. `retry_after` is the receiver's Retry-After
    (429/503), `final` whether that was the last attempt (the notification is now failed), `attempts` how
    many have been made."""

    def __init__(self, message: str, *, retry_after: float | None = None, final: bool = False,
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.final = final
        self.attempts = attempts


def rate_limit_key(channel_id: int, second: int) -> str:
    return f"cutover:channel-rate:{channel_id}:{second}"


# --- choosing channels ------------------------------------------------------------------------------------

def channels_for_alert(*, alert: Alert) -> list[NotificationChannel]:
    """Enabled channels attached to the alert's plan, or to its environment (and to no one plan), whose
    minimum severity the alert reaches (a rollback counts as critical)."""
    severity = effective_severity(alert.severity, alert.action)
    plan = alert.plan
    candidates = NotificationChannel.objects.filter(enabled=True).filter(
        Q(plan_id=plan.pk) | Q(plan__isnull=True, environment_id=plan.environment_id)
    ).order_by("pk")
    return [channel for channel in candidates if severity_at_least(severity, channel.min_severity)]


def alert_notify(*, alert: Alert, event: str) -> list[Notification]:
    """The alert's notifications for this transition ("trigger" or "resolve"), created if missing, each
    enqueued for sending once the surrounding transaction commits. Calling it again for the same
    transition creates and enqueues nothing more.

    A resolve also goes to every still-enabled channel that was told of the trigger, even if its minimum
    severity has since been raised, so an incident opened in PagerDuty is always closed."""
    event = NotificationEvent(event)
    channels = {channel.pk: channel for channel in channels_for_alert(alert=alert)}
    if event is NotificationEvent.RESOLVE:
        told = NotificationChannel.objects.filter(
            enabled=True, notifications__alert=alert, notifications__event=NotificationEvent.TRIGGER.value,
        ).exclude(pk__in=list(channels)).order_by("pk")
        channels |= {channel.pk: channel for channel in told}
    notifications = []
    with transaction.atomic():
        for channel in sorted(channels.values(), key=lambda c: c.pk):
            notification, created = Notification.objects.get_or_create(
                alert=alert, channel=channel, event=event.value
            )
            notifications.append(notification)
            if created:
                logger.info("notification %s queued: %s %s of alert %s to channel %s", notification.pk,
                            alert.name, event.value, alert.pk, channel.name)
                transaction.on_commit(partial(_enqueue, notification.pk), robust=True)
    return notifications


def _enqueue(notification_id: int) -> None:
    from ..tasks import notification_send as task  # tasks import services, not the other way round

    task.delay(notification_id)


# --- sending -------------------------------------------------------------------------------------------

def notification_send(*, notification_id: int, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
    """Deliver one notification, once. Raises NotificationDeferred (try later, not an attempt) or
    DeliveryFailed (an attempt failed; `final` once the notification is marked failed)."""
    failure: DeliveryFailed | None = None
    # The row stays locked while the message goes out (at most the HTTP timeout): a second worker running
    # the same notification waits here, then finds it sent.
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(of=("self",))
            .select_related("channel", "alert__plan__environment", "alert__rule")
            .filter(pk=notification_id).first()
        )
        if notification is None:
            logger.warning("notification %s no longer exists; nothing to send", notification_id)
            return
        if notification.status != NotificationStatus.PENDING:
            return
        channel, alert = notification.channel, notification.alert
        if not channel.enabled:
            _finish(notification, NotificationStatus.FAILED, "not sent: the channel was disabled")
            return
        if problems := channel_config_problems(channel.kind, channel.config):
            _finish(notification, NotificationStatus.FAILED, "not sent: the channel's settings are invalid: "
                    + "; ".join(f"{name or 'config'} {problem}" for name, problem in problems.items()))
            return
        if _superseded(notification):
            _finish(notification, NotificationStatus.FAILED,
                    "not sent: the alert resolved and its resolve reached this channel first")
            return
        if notification.event == NotificationEvent.RESOLVE and _trigger_still_pending(notification):
            raise NotificationDeferred("waiting for the trigger to go out first",
                                       countdown=RESOLVE_WAIT_COUNTDOWN_SECONDS)
        if not cache.add(rate_limit_key(channel.pk, int(_clock())), 1, timeout=2):
            raise NotificationDeferred(f"channel {channel.pk} already sent a message this second",
                                       countdown=RATE_LIMIT_COUNTDOWN_SECONDS)
        notification.attempts += 1
        try:
            _deliver(notification, channel, alert)
        except DeliveryFailed as error:
            final = notification.attempts >= max_attempts
            failure = DeliveryFailed(str(error), retry_after=error.retry_after, final=final,
                                     attempts=notification.attempts)
            _finish(notification, NotificationStatus.FAILED if final else NotificationStatus.PENDING, str(error))
        else:
            notification.sent_at = timezone.now()
            # last_error stays: it tells why earlier attempts failed.
            _finish(notification, NotificationStatus.SENT, notification.last_error)
    if failure is not None:
        log = logger.error if failure.final else logger.warning
        log("notification %s to channel %s (%s), attempt %s of %s failed%s: %s", notification.pk, channel.name,
            channel.kind, notification.attempts, max_attempts, "; giving up" if failure.final else "", failure)
        raise failure
    if notification.status == NotificationStatus.SENT:
        logger.info("notification %s sent: %s %s to channel %s (%s) after %s attempt(s)", notification.pk,
                    alert.name, notification.event, channel.name, channel.kind, notification.attempts)


def _finish(notification: Notification, status: NotificationStatus, error: str) -> None:
    notification.status = status.value
    notification.last_error = error[:_ERROR_MAX_CHARS]
    notification.save(update_fields=["status", "attempts", "last_error", "sent_at"])


def _superseded(notification: Notification) -> bool:
    """A trigger still pending after the same channel was sent the resolve: sending it now would reopen
    the incident (PagerDuty) or announce a fire that is out."""
    return notification.event == NotificationEvent.TRIGGER and Notification.objects.filter(
        alert_id=notification.alert_id, channel_id=notification.channel_id,
        event=NotificationEvent.RESOLVE.value, status=NotificationStatus.SENT.value,
    ).exists()


def _trigger_still_pending(notification: Notification) -> bool:
    """Whether this resolve's trigger, to the same channel, is still being retried (and not for so long
    that it looks stuck: then the resolve goes out anyway)."""
    return Notification.objects.filter(
        alert_id=notification.alert_id, channel_id=notification.channel_id,
        event=NotificationEvent.TRIGGER.value, status=NotificationStatus.PENDING.value,
        created_at__gt=timezone.now() - RESOLVE_WAIT_LIMIT,
    ).exists()


def alert_view(alert: Alert) -> AlertView:
    plan = alert.plan
    links: tuple[tuple[str, str], ...] = ()
    if base := getattr(settings, "CUTOVER_PUBLIC_URL", ""):
        try:
            path = reverse("admin:migrations_app_migrationplan_change", args=[plan.pk])
        except NoReverseMatch:
            path = ""
        if path:
            links = ((f"{plan.key} in Cutover", base.rstrip("/") + path),)
    return AlertView(
        id=alert.pk, name=alert.name, severity=effective_severity(alert.severity, alert.action),
        action=alert.action, state=alert.state, dedup_key=alert.dedup_key, summary=alert.summary,
        plan=plan.key, environment=plan.environment.name, first_seen=alert.first_seen, last_seen=alert.last_seen,
        resolved_at=alert.resolved_at, metric=alert.metric, observed=alert.observed, baseline=alert.baseline,
        evidence=alert.evidence or {}, rule=str(alert.rule) if alert.rule else None, links=links,
    )


def _deliver(notification: Notification, channel: NotificationChannel, alert: Alert) -> None:
    view = alert_view(alert)
    config = channel.config or {}
    event = NotificationEvent(notification.event)
    secrets = _secrets_of(channel)
    if channel.kind == ChannelKind.SLACK:
        _post_json(config["url"], slack_payload(view, event), kind="slack", secrets=secrets)
    elif channel.kind == ChannelKind.PAGERDUTY:
        body = pagerduty_payload(view, event, routing_key=config["routing_key"])
        _post_json(config.get("events_url") or PAGERDUTY_EVENTS_URL, body, kind="pagerduty", secrets=secrets)
    elif channel.kind == ChannelKind.WEBHOOK:
        payload = webhook_payload(view, event, delivery_id=f"ntf_{notification.pk}")
        _post_json(config["url"], payload, kind="webhook", secrets=secrets, signing_secret=config["signing_secret"],
                   headers={"X-Cutover-Event": payload["type"], "X-Cutover-Delivery": payload["id"]})
    elif channel.kind == ChannelKind.EMAIL:
        content = email_content(view, event)
        try:
            send_mail(content.subject, content.body, settings.CUTOVER_ALERT_FROM_EMAIL, list(config["to"]),
                      fail_silently=False)
        except (SMTPException, OSError) as error:
            raise DeliveryFailed(_redact(f"email: {type(error).__name__}: {error}", secrets)) from None
    else:
        raise DeliveryFailed(f"unknown channel kind {channel.kind!r}")


def _secrets_of(channel: NotificationChannel) -> list[str]:
    """Every credential of the channel, and the path of a secret URL (Slack's path is its token)."""
    config = channel.config or {}
    found = []
    for name in {*secret_settings(channel.kind), "routing_key", "signing_secret"}:
        value = config.get(name)
        if isinstance(value, str) and value:
            found.append(value)
            path = urlsplit(value).path
            if len(path) > 1:
                found.append(path)
                found.extend(part for part in path.split("/") if len(part) >= 6)
    return sorted(found, key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _post_json(url: str, payload: dict[str, Any], *, kind: str, secrets: list[str],
               signing_secret: str | None = None, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    sent_headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **(headers or {})}
    if signing_secret:
        sent_headers[SIGNATURE_HEADER] = sign(body, signing_secret, int(time.time()))
    where = f"{kind} at {_origin(url)}"
    try:
        response = httpx.post(url, content=body, headers=sent_headers, timeout=SEND_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        # `from None`: the transport error's own text and traceback may quote the URL.
        raise DeliveryFailed(_redact(f"{where}: {type(error).__name__}: {error}", secrets)) from None
    if response.is_success:
        return
    snippet = " ".join(response.text[:200].split())
    message = _redact(f"{where} answered HTTP {response.status_code}" + (f": {snippet}" if snippet else ""), secrets)
    retry_after = _retry_after(response) if response.status_code in (429, 503) else None
    raise DeliveryFailed(message, retry_after=retry_after)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


# --- channels (the admin's writes) ----------------------------------------------------------------------

class ChannelConfigInvalid(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name or 'config'}: {problem}" for name, problem in problems.items()))


_CHANNEL_FIELDS = ("name", "kind", "environment", "plan", "config", "min_severity", "enabled")


def _audited_channel(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "name": channel.name, "kind": channel.kind, "min_severity": channel.min_severity,
        "enabled": channel.enabled, "environment": channel.environment.name if channel.environment else None,
        "plan": channel.plan.key if channel.plan else None,
        "config": masked_config(channel.kind, channel.config or {}),
    }


def _validate_channel(channel: NotificationChannel) -> None:
    if problems := channel_config_problems(channel.kind, channel.config):
        raise ChannelConfigInvalid(problems)
    if (channel.environment_id is None) == (channel.plan_id is None):
        raise ChannelConfigInvalid({"": "attach the channel to an environment or to one plan (not both)"})


@transaction.atomic
def channel_create(*, actor: str, **fields: Any) -> NotificationChannel:
    unknown = set(fields) - set(_CHANNEL_FIELDS)
    if unknown:
        raise TypeError(f"unknown channel fields: {sorted(unknown)}")
    channel = NotificationChannel(**fields)
    _validate_channel(channel)
    channel.save()
    audit_record(actor=actor, action="channel.created", plan=channel.plan, after=_audited_channel(channel))
    return channel


def channel_update(*, actor: str, channel: NotificationChannel, **fields: Any) -> NotificationChannel:
    """Change a channel; the audit trail shows credentials masked (a changed secret shows as changed only
    through its masked form)."""
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
        before = _audited_channel(channel)
        raw_before = dict(channel.config or {})
        for name, value in fields.items():
            if name not in _CHANNEL_FIELDS:
                raise TypeError(f"{name} is not an editable channel field")
            setattr(channel, name, value)
        _validate_channel(channel)
        after = _audited_channel(channel)
        if after == before and raw_before == (channel.config or {}):
            return channel
        channel.save()
        changed_before = {k: v for k, v in before.items() if after[k] != v}
        changed_after = {k: v for k, v in after.items() if before[k] != v}
        secrets_changed = sorted(name for name in secret_settings(channel.kind) + ["routing_key", "signing_secret"]
                                 if raw_before.get(name) != (channel.config or {}).get(name))
        if secrets_changed:
            changed_after["secrets_changed"] = sorted(set(secrets_changed))
        audit_record(actor=actor, action="channel.updated", plan=channel.plan, before=changed_before,
                     after=changed_after)
    return channel
