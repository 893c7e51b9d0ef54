"""Shadow comparisons end to end through a real Celery worker: samples posted over HTTP (and mirrored by the
SDK) are compared by the worker against the simulator and stored once, even when a task is delivered twice."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from cutover.providers import ChatRequest, Message
from cutover.providers.prompt_adapters import STEP_BY_STEP_WITH_TAGS
from cutover.sdk import CutoverClient
from cutover.simulator import Scenario, SimulatorServer
from migrations_app.models import ShadowComparison, ShadowSample
from migrations_app.services.evaluation import plan_quality_settings_update
from migrations_app.services.plans import plan_act, plan_update
from migrations_app.tasks import shadow_compare
from tests import factories
from tests.support.processes import log_tail, start_celery, stop
from tests.support.simulated_plans import SIM_KEY_ENV, live_baseline_answer, sim_endpoint, sim_plan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def simulator():
    scenario = Scenario.from_dict({"seed": 3, "default": {"latency": {"median_ms": 20}}})
    with SimulatorServer(scenario) as server:
        yield server


@pytest.fixture
def worker(tmp_path, monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    process = start_celery("worker", "--pool=threads", "--concurrency=8", log=tmp_path / "worker.log",
                           CUTOVER_OFFLINE_RATE_LIMITS="default=0", **{SIM_KEY_ENV: "sim-key"})
    yield process
    stop(process)


def wait_until(condition, timeout: float, tmp_path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log_tail(tmp_path)
        time.sleep(0.1)


def test_samples_posted_over_http__compared_by_the_worker_once_each_even_when_redelivered(
        simulator, live_server, worker, tmp_path, monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    simulator.update_script("worker-base", {"answer": {"kind": "deterministic"}})
    simulator.update_script("worker-cand", {"answer": {"kind": "mirror", "mirror_model": "worker-base",
                                                       "alter_fraction": 0.5}})
    plan = sim_plan(simulator, baseline_model="worker-base", candidate_model="worker-cand", key="worker-plan",
                    noise_floor_fraction=0.3)
    client = httpx.Client(base_url=live_server.url, timeout=30,
                          headers={"Authorization": f"Bearer {factories.make_sdk_key('prod')}"})
    for i in range(40):
        prompt = f"Question {i}: when will my order arrive?"
        response = client.post("/api/v1/sdk/shadow", json={
            "plan": plan.key, "request_id": str(uuid.uuid4()), "segment": "orders",
            "request": {"messages": [{"role": "user", "content": prompt}]},
            "baseline": live_baseline_answer(plan, prompt)})
        assert response.status_code == 202 and response.json() == {"accepted": 1, "duplicate": 0}

    wait_until(lambda: ShadowComparison.objects.count() == 40, 60, tmp_path)
    calls = simulator.stats()["worker-cand"]["ok"]
    for sample_id in ShadowSample.objects.values_list("pk", flat=True)[:10]:
        shadow_compare.delay(sample_id)  # a task delivered a second time
    time.sleep(1.5)

    assert ShadowComparison.objects.count() == 40
    assert simulator.stats()["worker-cand"]["ok"] == calls  # and no call made again
    assert ShadowSample.objects.filter(state="done").count() == 40
    assert ShadowComparison.objects.filter(noise_score__isnull=False).count() > 0
    assert 0 < ShadowComparison.objects.filter(disagree=True).count() < 40
    summary = client.get(f"/api/v1/plans/{plan.key}/comparisons/")
    assert summary.status_code in (401, 403)  # the ops API is not for SDK keys


def test_sdk_mirroring__stored_comparisons_end_to_end(simulator, live_server, worker, tmp_path, monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    simulator.update_script("sdk-base", {"answer": {"kind": "deterministic"}})
    simulator.update_script("sdk-cand", {"answer": {"kind": "mirror", "mirror_model": "sdk-base"}})
    plan = sim_plan(simulator, baseline_model="sdk-base", candidate_model="sdk-cand", key="sdk-shadow")
    plan.shadow_sample_rate = 1.0
    plan.save(update_fields=["shadow_sample_rate"])
    for action in ("start", "advance"):  # shadowing: all traffic on the baseline, mirrored at the sample rate
        plan_act(actor="test", plan_key=plan.key, action=action)
    sdk = CutoverClient(live_server.url, factories.make_sdk_key("prod"), config_wait=20, flush_interval=0.1)
    try:
        assert sdk.config.wait_for_version(lambda d: plan.key in d.plans, 10)
        for i in range(10):
            result = sdk.complete(plan.key, ChatRequest(messages=(Message("user", f"Ticket {i}: refund?"),)),
                                  routing_key=f"user-{i}", segment="refunds")
            assert result.arm.value == "baseline"
    finally:
        sdk.close(timeout=10)

    wait_until(lambda: ShadowComparison.objects.filter(plan=plan).count() == 10, 60, tmp_path)
    comparisons = ShadowComparison.objects.filter(plan=plan)
    assert all(c.score == 1.0 and c.segment == "refunds" for c in comparisons)


def test_sdk_task__travels_with_the_shadow_sample__candidate_prompt_adapter_applies_it_in_the_worker(
        simulator, live_server, worker, tmp_path, monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    simulator.update_script("task-base", {"answer": {"kind": "deterministic"}})
    simulator.update_script("task-cand", {"answer": {"kind": "mirror", "mirror_model": "task-base"}})
    plan = sim_plan(simulator, baseline_model="task-base", candidate_model="task-cand", key="sdk-task",
                    noise_floor_fraction=0.0)
    plan = plan_update(actor="test", plan=plan, shadow_sample_rate=1.0, candidate_prompt_adapter="claude-v1")
    for action in ("start", "advance"):  # shadowing: all traffic on the baseline, every request mirrored
        plan_act(actor="test", plan_key=plan.key, action=action)
    sdk = CutoverClient(live_server.url, factories.make_sdk_key("prod"), config_wait=20, flush_interval=0.1)
    try:
        assert sdk.config.wait_for_version(lambda d: plan.key in d.plans, 10)
        for prompt, task in (("Plan a route for 3 parcels", "reasoning"), ("Say hello", "chat"), ("Hi", None)):
            result = sdk.complete(plan.key, ChatRequest(messages=(Message("user", prompt),)), task=task)
            assert result.arm.value == "baseline"
    finally:
        sdk.close(timeout=10)

    wait_until(lambda: ShadowComparison.objects.filter(plan=plan).count() == 3, 60, tmp_path)
    tasks = {s.request["messages"][-1]["content"]: s.request["params"].get("task")
             for s in ShadowSample.objects.filter(plan=plan)}
    assert tasks == {"Plan a route for 3 parcels": "reasoning", "Say hello": "chat", "Hi": None}
    sent = {r.body["messages"][-1]["content"].split("\n")[0]: r.body["messages"][-1]["content"]
            for r in simulator.recorded_requests("task-cand")}
    # claude-v1 asks for step-by-step reasoning on reasoning tasks only: the worker had the SDK's task.
    assert STEP_BY_STEP_WITH_TAGS in sent["Plan a route for 3 parcels"]
    assert sent["Say hello"] == "Say hello" and sent["Hi"] == "Hi"
    baseline_live = [r.body["messages"][-1]["content"] for r in simulator.recorded_requests("task-base")]
    assert "Plan a route for 3 parcels" in baseline_live  # the live baseline call was not adapted


def test_judge_plan__worker_stores_the_judges_verdict_for_an_sdk_mirrored_request(
        simulator, live_server, worker, tmp_path, monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    simulator.update_script("wj-base", {"answer": {"kind": "template", "template": "Refund approved: {last_user}"}})
    simulator.update_script("wj-cand", {"answer": {"kind": "template", "template": "No idea: {last_user}"}})
    simulator.update_script("wj-judge-2024-08-06", {"answer": {"kind": "judge", "judge_prefers": "approved"}})
    plan = sim_plan(simulator, baseline_model="wj-base", candidate_model="wj-cand", key="worker-judge",
                    noise_floor_fraction=0.0)
    plan = plan_quality_settings_update(actor="test", plan=plan, shadow_comparator="judge",
                                        judge_endpoint=sim_endpoint(simulator, "wj-judge-2024-08-06"),
                                        shadow_agreement_threshold=0.5)
    plan = plan_update(actor="test", plan=plan, shadow_sample_rate=1.0)
    for action in ("start", "advance"):
        plan_act(actor="test", plan_key=plan.key, action=action)
    sdk = CutoverClient(live_server.url, factories.make_sdk_key("prod"), config_wait=20, flush_interval=0.1)
    try:
        assert sdk.config.wait_for_version(lambda d: plan.key in d.plans, 10)
        sdk.complete(plan.key, ChatRequest(messages=(Message("user", "Refund for order 5?"),)))
    finally:
        sdk.close(timeout=10)

    wait_until(lambda: ShadowComparison.objects.filter(plan=plan).exists(), 60, tmp_path)
    comparison = ShadowComparison.objects.get(plan=plan)
    assert comparison.score == 0.0 and comparison.disagree and comparison.judge_cost > 0
    assert "candidate worse" in comparison.scores["judge"]["reason"]
