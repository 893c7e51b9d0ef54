"""Two `celery beat` schedulers at once (a failover that left the old one running) and two workers: both
beats send rollout ticks, and still no step of the plan is advanced twice."""

import time

import pytest

from migrations_app.models import AuditEvent, MigrationPlan
from migrations_app.services.plans import StepSpec
from tests.faults.conftest import rolling_plan
from tests.support.processes import log_tail, start_celery, stop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

FAST_TICKS = {"CUTOVER_ROLLOUT_TICK_SECONDS": "0.3", "CUTOVER_HEALTH_TICK_SECONDS": "0.3",
              "CUTOVER_HEALTH_NORMAL_INTERVAL_SECONDS": "0.3", "CUTOVER_HEARTBEAT_SECONDS": "60"}


def test_two_beat_schedulers__every_step_advanced_exactly_once(tmp_path):
    steps = [StepSpec(percent=p, min_hold_seconds=1, min_samples=0, deadline_seconds=120) for p in (5, 25, 50, 100)]
    plan = rolling_plan("two-beats", steps=steps, rules=[], final_hold_seconds=1, cleanup_after_seconds=1)
    processes = [start_celery("worker", "--pool=solo", "-Q", "control,celery", "-n", f"w{i}@%h",
                              log=tmp_path / f"worker{i}.log", **FAST_TICKS) for i in (1, 2)]
    processes += [start_celery("beat", "--schedule", str(tmp_path / f"beat{i}-schedule"),
                               log=tmp_path / f"beat{i}.log", **FAST_TICKS) for i in (1, 2)]
    try:
        deadline = time.monotonic() + 60
        while MigrationPlan.objects.get(pk=plan.pk).state != "completed":
            assert time.monotonic() < deadline, log_tail(tmp_path, "worker1.log")
            time.sleep(0.2)
        time.sleep(1.0)  # ticks still arriving find nothing more to do
    finally:
        for process in processes:
            stop(process)

    moves = list(AuditEvent.objects.filter(plan=plan, action="plan.advance").exclude(actor="test").order_by("id")
                 .values_list("actor", "before__state", "before__current_step_index"))
    assert moves == [("system:scheduler", "rolling_out", 0), ("system:scheduler", "rolling_out", 1),
                     ("system:scheduler", "rolling_out", 2), ("system:scheduler", "rolling_out", 3),
                     ("system:scheduler", "optimizing", None)]
    for i in (1, 2):  # both schedulers really were sending ticks
        assert "migrations_app.tasks.rollout_tick" in (tmp_path / f"beat{i}.log").read_text()
