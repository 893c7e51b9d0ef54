"""A whole migration that runs itself: the SDK sends traffic to the simulator and reports it, the real worker
and beat run the shadow comparisons, the health checker and the rollout scheduler, with durations of
seconds instead of weeks."""

import threading
import time

import pytest

from cutover.providers import ChatRequest, Message
from cutover.sdk import CutoverClient
from cutover.simulator import Scenario, SimulatorServer
from migrations_app.models import AuditEvent, MigrationPlan
from migrations_app.postmortem import postmortem_markdown
from migrations_app.services.plans import RuleSpec, StepSpec, plan_act, plan_create
from tests import factories
from tests.support.processes import log_tail, worker_and_beat

pytestmark = pytest.mark.django_db(transaction=True)

KEY_ENV = "CUTOVER_TEST_SIM_KEY"
FAST_TICKS = {"CUTOVER_ROLLOUT_TICK_SECONDS": "0.5", "CUTOVER_HEALTH_TICK_SECONDS": "0.5",
              "CUTOVER_HEALTH_NORMAL_INTERVAL_SECONDS": "0.5", "CUTOVER_HEARTBEAT_SECONDS": "60"}
# Rules a healthy candidate proves healthy within a few hundred requests.
QUICK_RULES = [
    RuleSpec(metric="error_rate", comparison="absolute", threshold=0.2, action="rollback", severity="critical",
             sustained_seconds=0, min_samples=60),
    RuleSpec(metric="cost_per_request", comparison="ratio", threshold=1.5, action="rollback", severity="critical",
             sustained_seconds=0, min_samples=60),
]


@pytest.fixture(scope="module")
def simulator():
    scenario = Scenario.from_dict({"seed": 3, "default": {"latency": {"median_ms": 1},
                                                          "answer": {"kind": "deterministic", "words": 8}}})
    with SimulatorServer(scenario) as server:
        yield server


@pytest.fixture(autouse=True)
def _sim_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sim-key")


def seconds_scale_plan(simulator, name: str, *, hold_at_25: int = 1) -> MigrationPlan:
    baseline = factories.make_endpoint(f"{name}-gpt", provider="openai", model=f"{name}-gpt",
                                       base_url=simulator.openai_base_url, api_key_env=KEY_ENV)
    candidate = factories.make_endpoint(f"{name}-claude", provider="anthropic", model=f"{name}-claude",
                                        base_url=simulator.base_url, api_key_env=KEY_ENV,
                                        input_price_per_mtok=3, output_price_per_mtok=15)
    # The candidate answers like the baseline: shadow shows no disagreement above the noise floor.
    simulator.update_script(candidate.model, {"answer": {"kind": "mirror", "mirror_model": baseline.model,
                                                         "alter_fraction": 0.0}})
    steps = [StepSpec(percent=p, min_hold_seconds=hold_at_25 if p == 25 else 1, min_samples=30, deadline_seconds=120)
             for p in (5, 25, 50, 100)]
    return plan_create(
        actor="test", key=name, environment=factories.make_environment("prod"), baseline=baseline,
        candidate=candidate, steps=steps, rules=QUICK_RULES, shadow_sample_rate=1.0, shadow_duration_seconds=1,
        final_hold_seconds=1, cleanup_after_seconds=1, evaluation_duration_seconds=0,
    )


class Traffic:
    """An application calling the plan through the SDK in a loop, as a thread."""

    def __init__(self, url: str, sdk_key: str, plan: MigrationPlan) -> None:
        # The application knows its baseline, so it has a model to call before the plan is published.
        self.client = CutoverClient(url, sdk_key, config_wait=5, flush_interval=0.2,
                                    baselines={plan.key: plan.baseline.spec()})
        self.plan_key = plan.key
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.calls < 20000:
            self.calls += 1
            request = ChatRequest(messages=[Message("user", f"Question {self.calls % 500}: where is my order?")],
                                  max_tokens=64)
            self.client.complete(self.plan_key, request, routing_key=f"user-{self.calls % 2000}")

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


def wait_for(condition, timeout: float, tmp_path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            plan = MigrationPlan.objects.get()
            trail = list(AuditEvent.objects.filter(plan=plan).values_list("action", "reason"))
            pytest.fail(f"{what}: still {plan.state} at {plan.candidate_percent} %\n{trail}\n{log_tail(tmp_path)}")
        time.sleep(0.2)


def test_healthy_candidate__draft_to_completed_by_itself(simulator, live_server, tmp_path):
    plan = seconds_scale_plan(simulator, "selfdriving")
    sdk_key = factories.make_sdk_key("prod")
    with worker_and_beat(tmp_path, **FAST_TICKS), Traffic(live_server.url, sdk_key, plan):
        plan_act(actor="user:ops", plan_key=plan.key, action="start", reason="rehearsal")
        wait_for(lambda: MigrationPlan.objects.get().state == "completed", 100, tmp_path, "completion")

    scheduler_moves = list(AuditEvent.objects.filter(plan=plan, actor="system:scheduler").order_by("id")
                           .values_list("after__state", "after__candidate_percent"))
    assert scheduler_moves == [("shadowing", 0), ("rolling_out", 5), ("rolling_out", 25), ("rolling_out", 50),
                               ("rolling_out", 100), ("optimizing", 100), ("completed", 100)]
    report = postmortem_markdown(plan=MigrationPlan.objects.get())
    assert "Outcome: **completed**" in report and "system:scheduler" in report and "Rollbacks: 0" in report


def test_regression_at_25_percent__rolled_back__then_retry_restarts_at_the_first_step(simulator, live_server,
                                                                                   tmp_path):
    plan = seconds_scale_plan(simulator, "regressing", hold_at_25=60)
    sdk_key = factories.make_sdk_key("prod")
    with worker_and_beat(tmp_path, **FAST_TICKS), Traffic(live_server.url, sdk_key, plan):
        plan_act(actor="user:ops", plan_key=plan.key, action="start")
        wait_for(lambda: MigrationPlan.objects.get().candidate_percent == 25, 120, tmp_path, "25 %")
        # The candidate's provider starts failing: most calls fail even after the SDK's retries.
        simulator.update_script(plan.candidate.model, {"errors": {"server_error": 0.9}})
        wait_for(lambda: MigrationPlan.objects.get().state == "rolled_back", 60, tmp_path, "the rollback")

        simulator.update_script(plan.candidate.model, {"errors": {"server_error": 0.0}})
        retried = plan_act(actor="user:ops", plan_key=plan.key, action="retry", reason="provider fixed")
        assert (retried.state, retried.candidate_percent, retried.rollback) == ("rolling_out", 5, False)

    rollback = AuditEvent.objects.get(plan=plan, action="plan.rollback")
    assert rollback.actor == "system:health-checker" and rollback.before["candidate_percent"] == 25
    report = postmortem_markdown(plan=MigrationPlan.objects.get())
    assert "Rollbacks: 1" in report and "automatic rollback" in report and "provider fixed" in report
