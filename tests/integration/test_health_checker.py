"""The health checker on real rollups: sustained breaches act, clear rules resolve, ticks are idempotent."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from migrations_app.domain.lifecycle import State
from migrations_app.models import Alert, AuditEvent, MigrationPlan, RuleStatus
from migrations_app.services.health import health_tick, plan_health_check
from migrations_app.services.ingest import events_ingest
from migrations_app.services.plans import RuleSpec, StepSpec, plan_act
from tests import factories
from tests.support.concurrency import run_at_once
from tests.support.streams import batches, request_events

pytestmark = pytest.mark.django_db


NORMALLY_WATCHED = [StepSpec(percent=50, monitor="normal"), StepSpec(percent=100)]


def rolling_plan(*rules: RuleSpec, steps: list[StepSpec] | None = None) -> MigrationPlan:
    """A plan at its first rollout step (by default the playbook's 5 %, watched closely), entered ten
    minutes ago (so events can be stamped in its past)."""
    plan = factories.make_plan(rules=list(rules), steps=steps)
    for action in ("start", "advance", "advance"):
        plan_act(actor="test", plan_key=plan.key, action=action)
    MigrationPlan.objects.filter(pk=plan.pk).update(step_started_at=timezone.now() - timedelta(minutes=10))
    return MigrationPlan.objects.get(pk=plan.pk)


def report(plan: MigrationPlan, arm: str, count: int, *, seed: int, **shape) -> None:
    """Events of `arm`, stamped five minutes ago."""
    events = request_events(plan=plan.key, arm=arm, count=count, rng=random.Random(seed),
                            ts=timezone.now() - timedelta(minutes=5), **shape)
    for batch in batches(events, 1000):
        events_ingest(environment_id=plan.environment_id, payload={"events": batch})


ERROR_ROLLBACK = RuleSpec(metric="error_rate", comparison="ratio", threshold=2.0, action="rollback",
                          severity="critical", sustained_seconds=0, min_samples=200)
ERROR_ALERT = RuleSpec(metric="error_rate", comparison="ratio", threshold=1.3, action="alert",
                       severity="warning", sustained_seconds=60, min_samples=200)


def test_rollback__error_rate_triples__rolled_back_with_evidence_in_the_audit_trail():
    plan = rolling_plan(ERROR_ROLLBACK)
    report(plan, "baseline", 12000, seed=1, error_rate=0.01)
    report(plan, "candidate", 12000, seed=2, error_rate=0.03)

    health_tick()

    plan.refresh_from_db()
    assert plan.state == State.ROLLED_BACK and plan.candidate_percent == 0 and plan.rollback
    rollback = AuditEvent.objects.get(action="plan.rollback")
    assert rollback.actor == "system:health-checker" and rollback.reason.startswith("automatic rollback: ")
    evidence = rollback.after["evidence"]
    assert evidence["status"] == "breached" and evidence["interval"][0] > 1.0 and evidence["effect"] > 2
    alert = Alert.objects.get()
    assert (alert.name, alert.severity, alert.action, alert.state) == ("ERROR_RATE_HIGH", "critical", "rollback",
                                                                       "firing")


def test_rollback__below_min_samples__not_enough_data_and_plan_untouched():
    plan = rolling_plan(ERROR_ROLLBACK)
    report(plan, "baseline", 150, seed=3, error_rate=0.01)
    report(plan, "candidate", 150, seed=4, error_rate=0.5)
    health_tick()
    plan.refresh_from_db()
    assert plan.state == State.ROLLING_OUT
    assert RuleStatus.objects.get().verdict == "not_enough_data"


def test_no_data_at_all__verdict_not_enough_data_never_healthy():
    plan = rolling_plan(ERROR_ROLLBACK)
    health_tick()
    assert RuleStatus.objects.get(rule__plan=plan).verdict == "not_enough_data"


def test_alert__sustained_window__fires_only_after_the_breach_lasted_that_long():
    plan = rolling_plan(ERROR_ALERT, steps=NORMALLY_WATCHED)
    report(plan, "baseline", 12000, seed=5, error_rate=0.01)
    report(plan, "candidate", 12000, seed=6, error_rate=0.03)
    start = timezone.now()

    plan_health_check(plan_id=plan.pk, now=start)
    assert not Alert.objects.exists()
    plan_health_check(plan_id=plan.pk, now=start + timedelta(seconds=61))

    alert = Alert.objects.get()
    assert (alert.name, alert.state, alert.severity) == ("ERROR_RATE_HIGH", "firing", "warning")
    plan.refresh_from_db()
    assert plan.state == State.ROLLING_OUT  # an alert rule only alerts on a normally watched step


def test_closely_watched_step__alert_rule_breached__rolls_back_and_pages_as_critical():
    plan = rolling_plan(ERROR_ALERT)  # 5 %: the playbook watches it closely
    report(plan, "baseline", 12000, seed=5, error_rate=0.01)
    report(plan, "candidate", 12000, seed=6, error_rate=0.03)
    start = timezone.now()
    plan_health_check(plan_id=plan.pk, now=start)
    plan_health_check(plan_id=plan.pk, now=start + timedelta(seconds=61))
    plan.refresh_from_db()
    assert plan.state == State.ROLLED_BACK
    alert = Alert.objects.get()
    assert (alert.name, alert.severity, alert.action) == ("ERROR_RATE_HIGH", "critical", "rollback")


def test_alert__rule_clears__resolved_only_after_staying_clear(settings):
    settings.CUTOVER_ALERT_MIN_CLEAR_SECONDS = 120
    plan = rolling_plan(ERROR_ALERT, steps=NORMALLY_WATCHED)
    report(plan, "baseline", 12000, seed=7, error_rate=0.01)
    report(plan, "candidate", 12000, seed=8, error_rate=0.03)
    start = timezone.now()
    plan_health_check(plan_id=plan.pk, now=start)
    plan_health_check(plan_id=plan.pk, now=start + timedelta(seconds=61))
    assert Alert.objects.get().state == "firing"

    # The operator moves the plan on: a new step, a new window with no data yet, so the rule is clear.
    # (Windows start at the minute of the step change; the events above are five minutes older.)
    plan_act(actor="test", plan_key=plan.key, action="advance")
    later = timezone.now() + timedelta(seconds=62)
    plan_health_check(plan_id=plan.pk, now=later)
    assert Alert.objects.get().state == "firing"  # clear, but not for long enough
    plan_health_check(plan_id=plan.pk, now=later + timedelta(seconds=121))
    alert = Alert.objects.get()
    assert alert.state == "resolved" and alert.resolved_at is not None


def test_identical_arms__checked_after_every_batch__never_breached(settings):
    settings.CUTOVER_HEALTH_NORMAL_INTERVAL_SECONDS = 0
    plan = rolling_plan(ERROR_ROLLBACK, ERROR_ALERT)
    rng_seed = 100
    for round_ in range(20):
        report(plan, "baseline", 500, seed=rng_seed + 2 * round_, error_rate=0.01)
        report(plan, "candidate", 500, seed=rng_seed + 2 * round_ + 1, error_rate=0.01)
        health_tick()
    plan.refresh_from_db()
    assert plan.state == State.ROLLING_OUT and not Alert.objects.exists()
    assert set(RuleStatus.objects.values_list("verdict", flat=True)) <= {"healthy", "inconclusive"}


def test_health_tick__twice_on_the_same_data__one_rollback_and_one_alert():
    plan = rolling_plan(ERROR_ROLLBACK)
    report(plan, "baseline", 12000, seed=9, error_rate=0.01)
    report(plan, "candidate", 12000, seed=10, error_rate=0.03)
    health_tick()
    health_tick()
    assert AuditEvent.objects.filter(action="plan.rollback").count() == 1
    assert Alert.objects.count() == 1


def test_manual_rollback__pages_as_plan_rolled_back():
    plan = rolling_plan(ERROR_ROLLBACK)
    plan_act(actor="user:ops", plan_key=plan.key, action="rollback", reason="customers complain")
    alert = Alert.objects.get()
    assert (alert.name, alert.severity) == ("PLAN_ROLLED_BACK", "critical")
    assert "customers complain" in alert.summary
    plan_act(actor="user:ops", plan_key=plan.key, action="retry")
    assert Alert.objects.get().state == "resolved"


def test_report_endpoint__per_arm_metrics_and_each_rule_with_interval_and_verdict(ops_client):
    plan = rolling_plan(ERROR_ROLLBACK, ERROR_ALERT)
    report(plan, "baseline", 3000, seed=11, error_rate=0.01)
    report(plan, "candidate", 3000, seed=12, error_rate=0.01)
    body = ops_client.get(f"/api/v1/plans/{plan.key}/report/").json()
    assert body["arms"]["candidate"]["requests"] == 3000
    assert body["arms"]["baseline"]["metrics"]["error_rate"] == pytest.approx(0.01, abs=0.006)
    assert body["arms"]["candidate"]["metrics"]["latency_p95"] > body["arms"]["candidate"]["metrics"]["latency_p50"]
    assert [rule["metric"] for rule in body["rules"]] == ["error_rate", "error_rate"]
    for rule in body["rules"]:
        assert rule["status"] in ("healthy", "inconclusive")
        assert rule["interval"][0] < 1 < rule["interval"][1] and rule["summary"]


def test_report_endpoint__thin_data_with_unbounded_intervals__still_valid_json(ops_client):
    plan = rolling_plan(RuleSpec(metric="latency_p95", comparison="ratio", threshold=1.5, action="alert",
                                 min_samples=1))
    report(plan, "baseline", 3, seed=13)
    report(plan, "candidate", 3, seed=14)
    response = ops_client.get(f"/api/v1/plans/{plan.key}/report/")
    assert response.status_code == 200
    [rule] = response.json()["rules"]
    assert rule["status"] in ("inconclusive", "breached") and rule["samples"] == [3, 3]


@pytest.mark.django_db(transaction=True)
def test_two_checkers_at_once__one_rollback_one_alert_one_audit_event():
    plan = rolling_plan(ERROR_ROLLBACK)
    report(plan, "baseline", 12000, seed=15, error_rate=0.01)
    report(plan, "candidate", 12000, seed=16, error_rate=0.03)

    run_at_once(health_tick)

    assert MigrationPlan.objects.get().state == State.ROLLED_BACK
    assert AuditEvent.objects.filter(action="plan.rollback").count() == 1
    assert Alert.objects.count() == 1
