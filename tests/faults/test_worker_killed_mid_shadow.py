"""A Celery worker process killed with SIGKILL in the middle of a shadow comparison (the candidate's call in
flight): the task is acks_late with reject_on_worker_lost, so it is delivered again, waits out the dead run's
lease, and the comparison is stored exactly once. The lease (20 s here) outlasts billiard's ~10 s to declare
the pool process lost, as the production lease outlasts it: the redelivered task finds the sample still held."""

import os
import signal
import subprocess
import time
import uuid

import pytest

from cutover.simulator import Scenario, SimulatorServer
from migrations_app.models import ShadowComparison, ShadowSample
from migrations_app.services.shadow import shadow_sample_ingest
from tests.support.processes import log_tail, start_celery, stop
from tests.support.servers import wait_until
from tests.support.simulated_plans import SIM_KEY_ENV, sim_plan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(line) for line in out.split()]


def test_worker_killed_mid_shadow_call__redelivered__comparison_stored_exactly_once(tmp_path, monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    scenario = Scenario.from_dict({"seed": 4, "default": {"latency": {"median_ms": 1}}})
    with SimulatorServer(scenario) as simulator:
        simulator.update_script("kill-base", {"answer": {"kind": "deterministic"}})
        simulator.update_script("kill-cand", {"answer": {"kind": "mirror", "mirror_model": "kill-base"},
                                              "latency": {"median_ms": 20000}})  # slow: the kill lands mid-call
        plan = sim_plan(simulator, baseline_model="kill-base", candidate_model="kill-cand", key="kill-plan",
                        noise_floor_fraction=0.0)
        worker = start_celery("worker", "--pool=prefork", "--concurrency=1", log=tmp_path / "worker.log",
                              CUTOVER_OFFLINE_RATE_LIMITS="default=0", CUTOVER_SHADOW_LEASE_SECONDS="20",
                              **{SIM_KEY_ENV: "sim-key"})
        try:
            result = shadow_sample_ingest(environment_id=plan.environment_id, payload={
                "plan": plan.key, "request_id": str(uuid.uuid4()),
                "request": {"messages": [{"role": "user", "content": "Where is my parcel?"}]},
                "baseline": {"text": "It is on its way.", "latency_ms": 300, "model": "kill-base"}})
            wait_until(lambda: ShadowSample.objects.get(pk=result.sample_id).attempts == 1, 30,
                       f"the sample claimed\n{log_tail(tmp_path)}")
            wait_until(lambda: len(simulator.recorded_requests("kill-cand")) == 1, 10, "the candidate asked")
            [child] = pool_children(worker.pid)
            os.kill(child, signal.SIGKILL)  # the pool process running the task, mid-call
            simulator.update_script("kill-cand", {"latency": {"median_ms": 1}})
            wait_until(lambda: ShadowComparison.objects.filter(sample_id=result.sample_id).exists(), 40,
                       f"the comparison stored\n{log_tail(tmp_path)}")
            time.sleep(1.0)  # nothing else arrives late
            assert worker.poll() is None  # the worker itself lived on and replaced its pool process
            assert child not in pool_children(worker.pid)
        finally:
            stop(worker)

    assert ShadowComparison.objects.filter(sample_id=result.sample_id).count() == 1
    sample = ShadowSample.objects.get(pk=result.sample_id)
    assert sample.state == "done" and sample.attempts == 2
    assert "WorkerLostError" in (tmp_path / "worker.log").read_text()
