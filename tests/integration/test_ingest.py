"""POST /api/v1/sdk/events and /feedback: whole-batch validation, idempotency, rollups."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from migrations_app.domain.histogram import quantile
from migrations_app.models import MetricRollup, RequestEvent, RequestFeedback
from migrations_app.selectors import arm_windows
from migrations_app.services.ingest import events_prune
from migrations_app.services.plans import plan_act
from tests import factories

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


def event(**overrides) -> dict:
    return {"id": str(uuid.uuid4()), "plan": "support-bot", "arm": "candidate", "ts": NOW.isoformat(),
            "latency_ms": 812.5, "ttft_ms": 140.0, "outcome": "ok", "error_type": None, "input_tokens": 420,
            "output_tokens": 96, "retries": 0, "fell_back": False, "format_ok": True, "refusal": False,
            "segment": "billing"} | overrides


@pytest.fixture
def sdk():
    plan = factories.make_plan()
    plan_act(actor="test", plan_key=plan.key, action="start")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_sdk_key('prod')}")
    return client


def post_events(client, events):
    return client.post("/api/v1/sdk/events", {"events": events}, format="json")


def test_events__interfaces_example__202_stored_with_cost_from_endpoint_prices(sdk):
    response = post_events(sdk, [event()])
    assert response.status_code == 202 and response.json() == {"accepted": 1, "duplicate": 0}
    stored = RequestEvent.objects.get()
    # claude-sonnet: $3 / Mtok in, $15 / Mtok out
    assert stored.cost == pytest.approx((420 * 3 + 96 * 15) / 1e6)
    assert (stored.arm, stored.outcome, stored.segment, stored.format_ok) == ("candidate", "ok", "billing", True)


def test_events__same_batch_twice__counted_once(sdk):
    batch = [event(), event(arm="baseline")]
    assert post_events(sdk, batch).json() == {"accepted": 2, "duplicate": 0}
    assert post_events(sdk, batch).json() == {"accepted": 0, "duplicate": 2}
    assert RequestEvent.objects.count() == 2
    assert sum(MetricRollup.objects.values_list("requests", flat=True)) == 2


@pytest.mark.django_db(transaction=True)
def test_events__same_batch_posted_by_two_clients_at_once__counted_once():
    plan = factories.make_plan()
    plan_act(actor="test", plan_key=plan.key, action="start")
    secret = factories.make_sdk_key("prod")
    earlier = (NOW - timedelta(minutes=2)).isoformat()
    for _ in range(3):
        batch = [event() for _ in range(150)] + [event(arm="baseline", ts=earlier) for _ in range(50)]
        barrier, answers = threading.Barrier(2), []

        def post(batch=batch, barrier=barrier, answers=answers):
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
            try:
                barrier.wait(timeout=10)
                response = post_events(client, batch)
                answers.append((response.status_code, response.json()))
            finally:
                connection.close()

        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert [status for status, _ in answers] == [202, 202]
        assert sorted(answer["accepted"] for _, answer in answers) == [0, 200]
        assert sum(answer["duplicate"] for _, answer in answers) == 200
    assert RequestEvent.objects.count() == 600
    assert sum(MetricRollup.objects.values_list("requests", flat=True)) == 600
    assert MetricRollup.objects.count() == 2


def test_events__one_bad_event__400_naming_each_bad_field_and_nothing_stored(sdk):
    batch = [event(), event(arm="canary", latency_ms=-3), event(id="not-a-uuid"), event(plan="no-such-plan")]
    response = post_events(sdk, batch)
    assert response.status_code == 400
    errors = response.json()["events"]
    assert errors[0] == {}
    assert set(errors[1]) == {"arm", "latency_ms"}
    assert "id" in errors[2]
    assert errors[3]["plan"] == ["no plan with this key in this SDK key's environment"]
    assert not RequestEvent.objects.exists() and not MetricRollup.objects.exists()


@pytest.mark.parametrize("body", [b"not json", b'{"events": {}}', b'{"events": []}', b"[]"])
def test_events__malformed_body__400_and_nothing_stored(sdk, body):
    response = sdk.post("/api/v1/sdk/events", body, content_type="application/json")
    assert response.status_code == 400
    assert not RequestEvent.objects.exists()


def test_events__another_environments_plan__refused(sdk):
    factories.make_plan("staging-bot", environment="staging")
    response = post_events(sdk, [event(plan="staging-bot")])
    assert response.status_code == 400 and "plan" in response.json()["events"][0]


def test_events__config_only_key__403():
    factories.make_plan()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_sdk_key('prod', scopes=['config:read'])}")
    assert post_events(client, [event()]).status_code == 403


def test_events__folded_into_per_minute_per_arm_rollups(sdk):
    earlier = (NOW - timedelta(minutes=3)).isoformat()
    batch = ([event(latency_ms=100.0 * (i + 1)) for i in range(10)]
             + [event(outcome="error", error_type="server_error"), event(outcome="timeout"),
                event(outcome="error", error_type="rate_limited"), event(fell_back=True),
                event(arm="baseline", ts=earlier, cost=0.5)])
    assert post_events(sdk, batch).status_code == 202
    plan = factories.MigrationPlan.objects.get(key="support-bot")
    windows = arm_windows(plan_id=plan.pk, since=NOW - timedelta(minutes=10))
    candidate, baseline = windows["candidate"], windows["baseline"]
    assert (candidate.requests, candidate.errors, candidate.timeouts, candidate.rate_limited,
            candidate.fallbacks, candidate.successes) == (14, 1, 1, 1, 1, 11)
    assert baseline.requests == 1 and baseline.cost_sum == 0.5
    assert quantile(candidate.latency_hist, 0.5) == pytest.approx(812.5, rel=0.3)
    assert MetricRollup.objects.filter(arm="baseline").get().minute == (NOW - timedelta(minutes=3)).replace(second=0)


def test_feedback__for_a_reported_request__lands_on_that_arm(sdk):
    request_id = str(uuid.uuid4())
    post_events(sdk, [event(id=request_id, arm="baseline")])
    response = sdk.post("/api/v1/sdk/feedback", {"request_id": request_id, "score": 0.25, "task_completed": True},
                        format="json")
    assert response.status_code == 202 and response.json() == {"accepted": 1, "duplicate": 0}
    plan = factories.MigrationPlan.objects.get(key="support-bot")
    baseline = arm_windows(plan_id=plan.pk, since=NOW - timedelta(minutes=10))["baseline"]
    assert (baseline.feedback_count, baseline.satisfaction_sum, baseline.task_reported, baseline.task_completed) == (
        1, 0.25, 1, 1)
    again = sdk.post("/api/v1/sdk/feedback", {"request_id": request_id, "score": 0.9}, format="json")
    assert again.json() == {"accepted": 0, "duplicate": 1} and RequestFeedback.objects.get().score == 0.25


def test_feedback__unknown_request_without_plan_and_arm__400_naming_request_id(sdk):
    response = sdk.post("/api/v1/sdk/feedback", {"request_id": str(uuid.uuid4()), "score": 1}, format="json")
    assert response.status_code == 400 and "request_id" in response.json()["feedback"][0]


@pytest.mark.parametrize(("body", "field"), [({"request_id": str(uuid.uuid4()), "score": 1.5}, "score"),
                                             ({"request_id": str(uuid.uuid4())}, "score")])
def test_feedback__bad_score__400_naming_score(sdk, body, field):
    response = sdk.post("/api/v1/sdk/feedback", body | {"plan": "support-bot", "arm": "candidate"}, format="json")
    assert response.status_code == 400 and field in response.json()["feedback"][0]


def test_prune__events_past_retention__deleted_and_rollups_kept(sdk, settings):
    post_events(sdk, [event()])
    settings.CUTOVER_EVENT_RETENTION_DAYS = 14
    assert events_prune(now=datetime.now(UTC) + timedelta(days=15)) == 1
    assert not RequestEvent.objects.exists() and MetricRollup.objects.count() == 1
