"""Provider keys never leave the process that uses them: plant unique values in the environment, run a whole
migration (API setup, SDK traffic, shadow comparisons against the simulator, a health tick that rolls back,
notifications to a local sink, reports, the admin) and grep everything the run produced: every log record
(all loggers at DEBUG), every HTTP response body and header, every audit event, every Celery task's
arguments, every row of the app's tables. Channel credentials may appear only where they must be sent."""

import json
import logging
import random
from datetime import timedelta

import pytest
from celery.app.task import Task
from django.apps import apps
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from cutover.simulator import Scenario, SimulatorServer
from cutover.webhooks import SIGNATURE_HEADER, verify
from migrations_app.models import Alert, AuditEvent, MigrationPlan, Notification, NotificationChannel, ShadowSample
from migrations_app.services.health import health_tick
from migrations_app.services.notifications import channel_create, notification_send
from migrations_app.services.rate_limit import rate_limit_reset
from migrations_app.services.shadow import shadow_compare
from tests import factories
from tests.support.http_sink import HttpSink
from tests.support.simulated_plans import live_baseline_answer
from tests.support.streams import batches, request_events

pytestmark = pytest.mark.django_db

PROVIDER_SECRETS = {
    "OPENAI_API_KEY": "sk-planted-openai-7f3c9a1e5b2d4c8e",
    "ANTHROPIC_API_KEY": "sk-ant-planted-anthropic-2b8d6f0a9c1e",
    "GOOGLE_API_KEY": "AIza-planted-google-5e7a1c3b9d2f",
}
SLACK_TOKEN = "PLANTEDslackTOKEN0123456789"
ROUTING_KEY = "PLANTEDpagerdutyROUTINGkey0123"
SIGNING_SECRET = "whsec_PLANTEDsigningSECRET0123456789"
CHANNEL_SECRETS = (SLACK_TOKEN, ROUTING_KEY, SIGNING_SECRET)
LOGGERS = ["", "httpx", "httpcore", "httpx2", "openai", "anthropic", "google_genai", "urllib3", "django",
           "django.request", "celery", "migrations_app", "cutover"]


@pytest.fixture
def simulator():
    with SimulatorServer(Scenario.from_dict({"seed": 3, "default": {"latency": {"median_ms": 0}}})) as server:
        yield server


@pytest.fixture
def sink():
    with HttpSink() as running:
        yield running


@pytest.fixture
def tasks_sent(monkeypatch) -> list:
    """Every Celery task's name and arguments (delay goes through apply_async); nothing reaches a broker."""
    sent: list = []

    def record(self, args=None, kwargs=None, **options):
        sent.append((self.name, args, kwargs))

    monkeypatch.setattr(Task, "apply_async", record)
    return sent


def test_planted_secrets__a_whole_migration__no_provider_secret_anywhere(
        simulator, sink, tasks_sent, caplog, monkeypatch, settings, django_capture_on_commit_callbacks):
    for name, value in PROVIDER_SECRETS.items():
        monkeypatch.setenv(name, value)
    settings.CUTOVER_OFFLINE_RATE_LIMITS = {"default": 0}
    rate_limit_reset()
    for logger in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=logger)
    responses: list[str] = []

    def seen(response):
        body = b"".join(response.streaming_content) if response.streaming else response.content
        responses.append(body.decode(errors="replace") + json.dumps(dict(response.items())))
        return response

    admin = factories.make_staff_user("root", role="cutover-admin")
    ops = APIClient()
    ops.force_authenticate(admin)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        # --- set up through the ops API
        seen(ops.post("/api/v1/environments/", {"name": "prod"}, format="json"))
        for name, env in (("base", "OPENAI_API_KEY"), ("cand", "ANTHROPIC_API_KEY")):
            assert seen(ops.post("/api/v1/endpoints/", {
                "name": name, "provider": "openai", "model": name, "base_url": simulator.openai_base_url,
                "api_key_env": env, "input_price_per_mtok": 3, "output_price_per_mtok": 15, "context_window": 128000,
                "default_params": {}}, format="json")).status_code == 201
        rule = {"metric": "error_rate", "comparison": "ratio", "threshold": 2.0, "sustained_seconds": 0,
                "min_samples": 200, "action": "rollback", "severity": "critical"}
        assert seen(ops.post("/api/v1/plans/", {"key": "planted", "environment": "prod", "baseline": "base",
                                                "candidate": "cand", "shadow_sample_rate": 1.0, "rules": [rule]},
                             format="json")).status_code == 201
        created = seen(ops.post("/api/v1/sdk-keys/", {"environment": "prod"}, format="json"))
        sdk = APIClient(HTTP_AUTHORIZATION=f"Bearer {created.json()['secret']}")
        environment = factories.make_environment("prod")
        channel_create(actor="user:root", name="slack", kind="slack", environment=environment, plan=None,
                       min_severity="info", config={"url": sink.url_for(f"/services/T0/B0/{SLACK_TOKEN}")})
        channel_create(actor="user:root", name="pd", kind="pagerduty", environment=environment, plan=None,
                       min_severity="info", config={"routing_key": ROUTING_KEY,
                                                    "events_url": sink.url_for("/v2/enqueue")})
        channel_create(actor="user:root", name="hook", kind="webhook", environment=environment, plan=None,
                       min_severity="info", config={"url": sink.url_for("/hooks"), "signing_secret": SIGNING_SECRET})
        for action in ("start", "advance"):
            assert seen(ops.post(f"/api/v1/plans/planted/{action}/", {"reason": action},
                                 format="json")).status_code == 200

        # --- SDK traffic: config, shadow samples compared by the worker's code, events, feedback
        seen(sdk.get("/api/v1/sdk/config"))
        plan = MigrationPlan.objects.get(key="planted")
        for index in range(5):
            prompt = f"Where is order {index}?"
            body = {"plan": "planted", "request_id": f"00000000-0000-4000-8000-00000000000{index}",
                    "request": {"messages": [{"role": "user", "content": prompt}], "params": {"max_tokens": 50}},
                    "baseline": live_baseline_answer(plan, prompt), "segment": "billing"}
            assert seen(sdk.post("/api/v1/sdk/shadow", json.dumps(body),
                                 content_type="application/json")).status_code == 202
        for sample in ShadowSample.objects.all():
            shadow_compare(sample_id=sample.pk)
        assert plan.shadow_comparisons.count() == 5
        assert seen(ops.post("/api/v1/plans/planted/advance/", {}, format="json")).status_code == 200
        MigrationPlan.objects.filter(pk=plan.pk).update(step_started_at=timezone.now() - timedelta(minutes=10))
        stamp = timezone.now() - timedelta(minutes=5)
        for arm, rate, seed in (("baseline", 0.01, 1), ("candidate", 0.05, 2)):
            events = request_events(plan="planted", arm=arm, count=3000, rng=random.Random(seed), ts=stamp,
                                    error_rate=rate)
            for batch in batches(events, 1000):
                assert seen(sdk.post("/api/v1/sdk/events", json.dumps({"events": batch}, default=str),
                                     content_type="application/json")).status_code == 202
        first = events[0]["id"]
        seen(sdk.post("/api/v1/sdk/feedback", json.dumps({"feedback": [{"request_id": first, "score": 0.2,
                                                                        "task_completed": False}]}),
                      content_type="application/json"))

        # --- the health tick rolls back; its notifications go out to the sink
        with transaction.atomic():
            health_tick()
        plan.refresh_from_db()
        assert plan.state == "rolled_back"
    assert callbacks  # the on-commit work ran (enqueues recorded, config published)
    for notification in Notification.objects.all():
        notification_send(notification_id=notification.pk)
    delivered = sink.wait_for(3)

    # --- reports, exports, schema and the admin
    for path in ["/api/v1/plans/", "/api/v1/plans/planted/", "/api/v1/plans/planted/report/",
                 "/api/v1/plans/planted/postmortem/", "/api/v1/plans/planted/comparisons/",
                 "/api/v1/plans/planted/comparisons/export.jsonl", "/api/v1/plans/planted/shadow-summary/",
                 "/api/v1/endpoints/", "/api/v1/endpoints/base/", "/api/v1/audit/", "/api/v1/alerts/",
                 "/api/v1/sdk-keys/", "/api/v1/environments/", "/api/schema/", "/metrics", "/readyz"]:
        assert seen(ops.get(path)).status_code == 200, path
    browser = Client()
    browser.force_login(factories.make_staff_user("su", superuser=True))
    channel = NotificationChannel.objects.get(name="pd")
    alert = Alert.objects.get()
    for url in [reverse("admin:migrations_app_migrationplan_change", args=[plan.pk]),
                reverse("admin:migrations_app_migrationplan_dashboard", args=[plan.pk]),
                reverse("admin:migrations_app_migrationplan_dashboard_data", args=[plan.pk]),
                reverse("admin:migrations_app_modelendpoint_changelist"),
                reverse("admin:migrations_app_modelendpoint_change", args=[plan.baseline_id]),
                reverse("admin:migrations_app_notificationchannel_changelist"),
                reverse("admin:migrations_app_notificationchannel_change", args=[channel.pk]),
                reverse("admin:migrations_app_notification_changelist"),
                reverse("admin:migrations_app_alert_change", args=[alert.pk]),
                reverse("admin:migrations_app_auditevent_changelist"),
                reverse("admin:migrations_app_shadow_page", args=[plan.key]),
                reverse("admin:migrations_app_sdkkey_changelist")]:
        assert seen(browser.get(url)).status_code == 200, url

    # --- grep everything
    logs = [f"{r.name} {r.getMessage()} {r.exc_text or ''} {getattr(r, 'args', '')!r}" for r in caplog.records]
    audit = [json.dumps([e.actor, e.action, e.before, e.after, e.reason], default=str)
             for e in AuditEvent.objects.all()]
    task_args = [repr(sent) for sent in tasks_sent]
    rows = [json.dumps(list(model.objects.values()), default=str) for model in apps.get_app_config(
        "migrations_app").get_models() if model is not NotificationChannel]
    assert len(responses) > 40 and logs and len(audit) > 8 and tasks_sent and len(delivered) == 3
    everything = {"responses": responses, "logs": logs, "audit": audit, "task args": task_args, "rows": rows}
    for where, texts in everything.items():
        for secret in (*PROVIDER_SECRETS.values(), *CHANNEL_SECRETS):
            leaks = [text[:300] for text in texts if secret in text]
            assert not leaks, f"{secret} in {where}: {leaks[:2]}"

    # Channel credentials go where they must, and nowhere else: the receivers.
    by_path = {request.path: request for request in delivered}
    assert SLACK_TOKEN in next(path for path in by_path if path.startswith("/services/"))
    assert by_path["/v2/enqueue"].json()["routing_key"] == ROUTING_KEY
    hook = by_path["/hooks"]
    assert verify(hook.body, hook.header(SIGNATURE_HEADER), SIGNING_SECRET)
    assert not any(secret in request.body.decode() for request in delivered for secret in PROVIDER_SECRETS.values())
