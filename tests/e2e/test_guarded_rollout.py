"""Synthetic event streams through the HTTP API, judged by the health checker in a real Celery worker
(scheduled by a real beat), with on-call paged through local HTTP sinks."""

import random
import time

import httpx
import pytest

from migrations_app.models import Alert, MigrationPlan, RequestEvent
from migrations_app.services.notifications import channel_create
from migrations_app.services.plans import default_rules, plan_act
from tests import factories
from tests.support.http_sink import HttpSink
from tests.support.processes import log_tail, worker_and_beat
from tests.support.streams import batches, feedback, request_events

pytestmark = pytest.mark.django_db(transaction=True)

FAST_CHECKS = {"CUTOVER_HEALTH_TICK_SECONDS": "0.5", "CUTOVER_HEARTBEAT_SECONDS": "60"}


def playbook_rules_sustained_for(seconds: int):
    """The playbook's default rules, with a sustained-for window a test can wait out."""
    return [rule.__class__(**(rule.__dict__ | {"sustained_seconds": seconds})) for rule in default_rules()]


@pytest.fixture
def rolling_plan():
    plan = factories.make_plan(rules=playbook_rules_sustained_for(1))
    for action in ("start", "advance", "advance"):
        plan_act(actor="test", plan_key=plan.key, action=action)
    return plan


@pytest.fixture
def sdk_client(live_server):
    client = httpx.Client(base_url=live_server.url, timeout=30,
                          headers={"Authorization": f"Bearer {factories.make_sdk_key('prod')}"})
    yield client
    client.close()


@pytest.fixture
def on_call(rolling_plan):
    """PagerDuty and a Slack on-call channel for critical alerts, each a local sink."""
    with HttpSink() as pagerduty, HttpSink() as slack:
        channel_create(actor="test", name="pagerduty-oncall", kind="pagerduty", plan=rolling_plan,
                       min_severity="critical",
                       config={"routing_key": "R0UT1NGKEY0000000000000000000000", "events_url": pagerduty.url})
        channel_create(actor="test", name="slack-oncall", kind="slack", plan=rolling_plan, min_severity="critical",
                       config={"url": slack.url_for("/services/T000/B000/XXXX")})
        yield pagerduty, slack


def post_events(client: httpx.Client, events: list[dict]) -> None:
    for batch in batches(events, 1000):
        response = client.post("/api/v1/sdk/events", json={"events": batch})
        assert response.status_code == 202, response.text


def wait_until(condition, timeout: float, tmp_path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log_tail(tmp_path)
        time.sleep(0.2)


def test_error_rate_triples__rolled_back_and_on_call_paged_exactly_once(rolling_plan, sdk_client, on_call,
                                                                         tmp_path):
    pagerduty, slack = on_call
    rng = random.Random(3)
    with worker_and_beat(tmp_path, **FAST_CHECKS):
        post_events(sdk_client, request_events(plan=rolling_plan.key, arm="baseline", count=12000, rng=rng,
                                               error_rate=0.01))
        post_events(sdk_client, request_events(plan=rolling_plan.key, arm="candidate", count=12000, rng=rng,
                                               error_rate=0.03))
        wait_until(lambda: MigrationPlan.objects.get().state == "rolled_back", 60, tmp_path)
        pagerduty.wait_for(1, timeout=30)
        slack.wait_for(1, timeout=30)
        time.sleep(3)  # several more health ticks: nothing else may arrive

    plan = MigrationPlan.objects.get()
    assert plan.candidate_percent == 0 and plan.rollback
    [page] = pagerduty.requests
    assert page.json()["event_action"] == "trigger" and page.json()["payload"]["severity"] == "critical"
    assert "ERROR_RATE_HIGH" in page.json()["payload"]["summary"]
    assert len(slack.requests) == 1 and "ERROR_RATE_HIGH" in slack.requests[0].body.decode()


def test_identical_candidate__long_stream_checked_continuously__never_rolled_back(rolling_plan, sdk_client,
                                                                                 on_call, tmp_path):
    pagerduty, slack = on_call
    rng = random.Random(4)
    with worker_and_beat(tmp_path, **FAST_CHECKS):
        for _ in range(20):  # 40,000 requests, with the checker running every half second meanwhile
            post_events(sdk_client, request_events(plan=rolling_plan.key, arm="baseline", count=1000, rng=rng))
            post_events(sdk_client, request_events(plan=rolling_plan.key, arm="candidate", count=1000, rng=rng))
        time.sleep(2)
        checked = MigrationPlan.objects.get().rules.filter(status__evaluated_at__isnull=False).count()
    assert checked == len(default_rules())
    assert MigrationPlan.objects.get().state == "rolling_out"
    assert not Alert.objects.filter(severity="critical").exists()
    assert pagerduty.requests == [] and slack.requests == []


def test_p95_latency_up_50_percent__latency_degraded_raised(rolling_plan, sdk_client, tmp_path):
    rng = random.Random(5)
    with worker_and_beat(tmp_path, **FAST_CHECKS):
        post_events(sdk_client, request_events(plan=rolling_plan.key, arm="baseline", count=6000, rng=rng,
                                               latency_median_ms=800, latency_p95_ms=2000))
        post_events(sdk_client, request_events(plan=rolling_plan.key, arm="candidate", count=6000, rng=rng,
                                               latency_median_ms=1200, latency_p95_ms=3000))
        wait_until(lambda: Alert.objects.filter(name="LATENCY_DEGRADED", state="firing").exists(), 60, tmp_path)
    alert = Alert.objects.get(name="LATENCY_DEGRADED")
    assert alert.observed > alert.baseline
    # At 5 % the playbook watches closely: an alert-level rule rolls back and pages as critical.
    assert (alert.severity, alert.action) == ("critical", "rollback")
    wait_until(lambda: MigrationPlan.objects.get().state == "rolled_back", 10, tmp_path)


def test_satisfaction_down_20_percent__rolled_back(rolling_plan, sdk_client, tmp_path):
    rng = random.Random(6)
    with worker_and_beat(tmp_path, **FAST_CHECKS):
        for arm, mean in (("baseline", 0.8), ("candidate", 0.64)):
            items = feedback(plan=rolling_plan.key, arm=arm, count=3000, rng=rng, mean_score=mean)
            for batch in batches(items, 1000):
                response = sdk_client.post("/api/v1/sdk/feedback", json={"feedback": batch})
                assert response.status_code == 202, response.text
        wait_until(lambda: MigrationPlan.objects.get().state == "rolled_back", 60, tmp_path)
    alert = Alert.objects.get(name="SATISFACTION_DOWN", action="rollback")
    assert alert.severity == "critical"


def test_malformed_batch__400_and_nothing_stored(rolling_plan, sdk_client):
    events = request_events(plan=rolling_plan.key, arm="candidate", count=50, rng=random.Random(7))
    events[17]["outcome"] = "maybe"
    response = sdk_client.post("/api/v1/sdk/events", json={"events": events})
    assert response.status_code == 400
    assert response.json()["events"][17] == {"outcome": ["must be one of ok, error, timeout"]}
    assert not RequestEvent.objects.exists()
