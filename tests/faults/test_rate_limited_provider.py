"""A candidate provider answering 429s (with Retry-After) and timing out: the SDK retries within its policy's
bounds (counted by the simulator), reports what happened, and the scheduler holds the ramp — the 429s are a
capacity problem, not a quality regression, so neither an advance nor a rollback follows."""

from datetime import timedelta

import pytest

from cutover.providers import ChatRequest, Message, RetryPolicy
from cutover.routing import Arm
from cutover.sdk import CutoverClient
from cutover.simulator import Scenario, SimulatorServer
from migrations_app.models import MigrationPlan, RequestEvent
from migrations_app.services.health import plan_health_check
from migrations_app.services.plans import RuleSpec, plan_update
from migrations_app.services.rollout import plan_schedule
from tests.e2e.sdk.conftest import KEY_ENV, make_live_plan
from tests.support.servers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

POLICY = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, max_retry_after=1.0)
CALLS = 60


@pytest.fixture
def simulator(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sim-key")
    with SimulatorServer(Scenario.from_dict({"seed": 11, "default": {"latency": {"median_ms": 0}}})) as server:
        yield server


def test_candidate_429s_and_timeouts__retries_bounded__ramp_held_not_rolled_back(live_server, simulator):
    live = make_live_plan(live_server, simulator, percent=50.0, name="throttled")
    plan = MigrationPlan.objects.get(key=live.key)
    plan_update(actor="test", plan=plan, rules=[RuleSpec(
        metric="error_rate", comparison="absolute", threshold=0.2, action="rollback", severity="critical",
        sustained_seconds=0, min_samples=10)])
    assert [s.percent for s in plan.steps.all()] == [50.0]
    simulator.update_script(live.candidate_model, {"errors": {"rate_limited": 0.7, "timeout": 0.1,
                                                              "retry_after_s": 0.02, "timeout_hold_s": 1.0}})
    client = CutoverClient(live.url, live.sdk_key, config_wait=5, flush_interval=0.1, retry_policy=POLICY)
    try:
        assert client.config.wait_for_version(lambda d: live.key in d.plans, 5)
        routed = []
        for i in range(CALLS):
            user = f"user-{i}"
            routed.append(client.route(live.key, routing_key=user).decision.arm)
            client.complete(live.key, ChatRequest(messages=(Message("user", f"Question {i}"),), timeout=0.3),
                            routing_key=user)
        assert client.reporter.flush(timeout=10)
    finally:
        client.close(timeout=5)

    to_candidate = routed.count(Arm.CANDIDATE)
    stats = simulator.stats()[live.candidate_model]
    attempts = sum(stats.values())
    assert stats.get("rate_limited", 0) > 0 and stats.get("timeout", 0) > 0, stats
    # Every candidate call was tried at most 1 + max_retries times, and the retries did happen.
    assert to_candidate < attempts <= to_candidate * (1 + POLICY.max_retries), (to_candidate, stats)
    wait_until(lambda: RequestEvent.objects.filter(plan=plan).count() == CALLS, 10, "every event stored")
    limited = RequestEvent.objects.filter(plan=plan, arm="candidate", error_type="rate_limited").count()
    assert limited > 0

    plan.refresh_from_db()
    now = plan.step_started_at + timedelta(seconds=5)  # the step's hold (0 s) is over, its deadline is not
    decision = plan_schedule(plan_id=plan.pk, now=now)
    assert decision.move == "wait" and "429" in decision.reason, decision
    plan_health_check(plan_id=plan.pk, now=now)
    plan.refresh_from_db()
    assert (plan.state, plan.candidate_percent, plan.rollback) == ("rolling_out", 50.0, False)

