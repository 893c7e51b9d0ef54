"""The rollout scheduler's tick on real plans, rollups and rules."""

import json
import random
from datetime import timedelta

import pytest
from django.core.cache import cache

from cutover.sdk.document import parse_document
from migrations_app.domain.lifecycle import State
from migrations_app.models import Alert, AuditEvent, MigrationPlan, ModelEndpoint
from migrations_app.services.config_cache import config_document_get
from migrations_app.services.ingest import events_ingest
from migrations_app.services.plans import RuleSpec, StepSpec, plan_act
from migrations_app.services.rollout import plan_schedule, rollout_tick
from tests import factories
from tests.support.concurrency import run_at_once
from tests.support.streams import batches, request_events

pytestmark = pytest.mark.django_db

# Rules a healthy candidate proves healthy on a few thousand requests.
QUICK_RULES = [
    RuleSpec(metric="error_rate", comparison="absolute", threshold=0.05, action="rollback", min_samples=100),
    RuleSpec(metric="latency_p95", comparison="ratio", threshold=1.5, action="alert", min_samples=100),
]
STEPS = [StepSpec(percent=5, min_hold_seconds=60, min_samples=500, deadline_seconds=600),
         StepSpec(percent=50, min_hold_seconds=60, min_samples=500, needs_approval=True),
         StepSpec(percent=100, min_hold_seconds=60, min_samples=500)]


def plan_at_first_step(**fields) -> MigrationPlan:
    plan = factories.make_plan(rules=QUICK_RULES, steps=STEPS, final_hold_seconds=120, cleanup_after_seconds=300,
                               **fields)
    for action in ("start", "advance", "advance"):
        plan_act(actor="test", plan_key=plan.key, action=action)
    return MigrationPlan.objects.get(pk=plan.pk)


def report(plan: MigrationPlan, arm: str, count: int, seed: int, **shape) -> None:
    events = request_events(plan=plan.key, arm=arm, count=count, rng=random.Random(seed),
                            ts=plan.step_started_at + timedelta(seconds=1), **shape)
    for batch in batches(events, 1000):
        events_ingest(environment_id=plan.environment_id, payload={"events": batch})


def later(plan: MigrationPlan, seconds: float):
    return plan.step_started_at + timedelta(seconds=seconds)


def test_evaluating__no_evaluation_required__moves_on_to_shadow():
    plan = factories.make_plan()
    plan_act(actor="test", plan_key=plan.key, action="start")
    rollout_tick()
    plan.refresh_from_db()
    assert plan.state == State.SHADOWING
    event = AuditEvent.objects.filter(action="plan.advance").get()
    assert event.actor == "system:scheduler" and "not required" in event.reason


def test_step__hold_not_over__waits():
    plan = plan_at_first_step()
    report(plan, "baseline", 3000, 1)
    report(plan, "candidate", 3000, 2)
    decision = plan_schedule(plan_id=plan.pk, now=later(plan, 30))
    assert decision.move == "wait" and "hold" in decision.reason
    assert MigrationPlan.objects.get().candidate_percent == 5


def test_step__held_sampled_and_healthy__advances_to_the_next_percent():
    plan = plan_at_first_step()
    report(plan, "baseline", 3000, 1)
    report(plan, "candidate", 3000, 2)
    decision = plan_schedule(plan_id=plan.pk, now=later(plan, 61))
    plan.refresh_from_db()
    assert decision.move == "advance", decision.reason
    assert (plan.state, plan.candidate_percent, plan.current_step_index) == (State.ROLLING_OUT, 50, 1)


def test_step__no_traffic_at_all__never_advances_and_pauses_at_the_deadline():
    plan = plan_at_first_step()
    assert plan_schedule(plan_id=plan.pk, now=later(plan, 61)).move == "wait"
    decision = plan_schedule(plan_id=plan.pk, now=later(plan, 601))
    plan.refresh_from_db()
    assert decision.move == "pause" and plan.state == State.PAUSED and plan.paused_from == State.ROLLING_OUT
    alert = Alert.objects.get()
    assert alert.name == "ANALYSIS_INCONCLUSIVE" and "inconclusive" in alert.summary
    plan_act(actor="user:ops", plan_key=plan.key, action="resume")
    assert Alert.objects.get().state == "resolved"


def test_step__candidate_rate_limited__holds_the_ramp_without_counting_errors():
    plan = plan_at_first_step()
    report(plan, "baseline", 3000, 1)
    report(plan, "candidate", 3000, 2)
    limited = request_events(plan=plan.key, arm="candidate", count=100, rng=random.Random(3), error_rate=1.0,
                             ts=plan.step_started_at + timedelta(seconds=2))
    for event in limited:
        event["error_type"] = "rate_limited"
    events_ingest(environment_id=plan.environment_id, payload={"events": limited})
    decision = plan_schedule(plan_id=plan.pk, now=later(plan, 61))
    assert decision.move == "wait" and "429" in decision.reason
    assert MigrationPlan.objects.get().state == State.ROLLING_OUT


def test_step__next_percent_beyond_candidate_rpm_limit__holds():
    plan = plan_at_first_step()
    ModelEndpoint.objects.filter(pk=plan.candidate_id).update(requests_per_minute=100)
    report(plan, "baseline", 3000, 1)
    report(plan, "candidate", 3000, 2)
    decision = plan_schedule(plan_id=plan.pk, now=later(plan, 61))
    assert decision.move == "wait" and "above its limit of 100" in decision.reason


def test_step__needs_approval__waits_until_a_person_advances():
    plan = plan_at_first_step()
    plan_act(actor="test", plan_key=plan.key, action="advance")  # now at 50 %, which needs approval
    plan.refresh_from_db()
    report(plan, "baseline", 3000, 4)
    report(plan, "candidate", 3000, 5)
    decision = plan_schedule(plan_id=plan.pk, now=later(plan, 3600))
    assert decision.move == "wait" and "approval" in decision.reason
    assert MigrationPlan.objects.get().candidate_percent == 50


def test_last_step__final_hold__then_optimizing_then_completed_and_baseline_dropped():
    plan = plan_at_first_step()
    plan_act(actor="test", plan_key=plan.key, action="advance")
    plan_act(actor="test", plan_key=plan.key, action="advance")  # 100 %
    plan.refresh_from_db()
    report(plan, "baseline", 3000, 6)
    report(plan, "candidate", 3000, 7)
    assert "of 120 s" in plan_schedule(plan_id=plan.pk, now=later(plan, 61)).reason  # the final hold
    assert plan_schedule(plan_id=plan.pk, now=later(plan, 121)).move == "advance"
    plan.refresh_from_db()
    assert plan.state == State.OPTIMIZING and plan.candidate_percent == 100
    assert plan_schedule(plan_id=plan.pk, now=later(plan, 100)).move == "wait"
    assert plan_schedule(plan_id=plan.pk, now=later(plan, 301)).move == "advance"
    plan.refresh_from_db()
    assert plan.state == State.COMPLETED
    cache.clear()  # on-commit rebuilds don't run inside this test's transaction: build the document afresh
    document = json.loads(config_document_get(plan.environment_id).body)
    [published] = document["plans"]
    assert published["state"] == "completed" and published["baseline"] is None
    # …and the SDK accepts that document: the candidate serves everything.
    assert parse_document(document).plan(plan.key).baseline.endpoint.model == plan.candidate.model


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once__a_step_is_taken_once():
    plan = plan_at_first_step()
    report(plan, "baseline", 3000, 8)
    report(plan, "candidate", 3000, 9)
    now = later(plan, 61)

    run_at_once(lambda: rollout_tick(now=now))

    assert AuditEvent.objects.filter(action="plan.advance", actor="system:scheduler").count() == 1
    assert MigrationPlan.objects.get().candidate_percent == 50


def test_postmortem__after_a_rollback__states_what_happened(ops_client):
    plan = plan_at_first_step()
    report(plan, "baseline", 3000, 10)
    report(plan, "candidate", 3000, 11, error_rate=0.2)
    plan_act(actor="user:ops", plan_key=plan.key, action="rollback", reason="errors spiked")
    response = ops_client.get(f"/api/v1/plans/{plan.key}/postmortem/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith("# Postmortem: support-bot")
    assert "Outcome: **rolled back**" in text and "errors spiked" in text and "PLAN_ROLLED_BACK" in text
    assert "| error_rate |" in text and "## What went well" in text and "## What to improve" in text


def test_full_traffic_step__baseline_serves_nothing__judged_against_the_baseline_as_last_seen():
    plan = plan_at_first_step()
    plan_act(actor="test", plan_key=plan.key, action="advance")  # 50 %
    plan.refresh_from_db()
    report(plan, "baseline", 3000, 12)
    report(plan, "candidate", 3000, 13)
    plan_act(actor="test", plan_key=plan.key, action="advance")  # 100 %: only the candidate gets traffic
    plan.refresh_from_db()
    report(plan, "candidate", 3000, 14)
    decision = plan_schedule(plan_id=plan.pk, now=later(plan, 121))
    assert decision.move == "advance", decision.reason
    assert MigrationPlan.objects.get().state == State.OPTIMIZING


def test_pause_then_resume__step_keeps_its_data_and_gets_a_fresh_hold():
    plan = plan_at_first_step()
    report(plan, "baseline", 3000, 15)
    report(plan, "candidate", 3000, 16)
    serial = plan.step_serial
    plan_act(actor="user:ops", plan_key=plan.key, action="pause")
    resumed = plan_act(actor="user:ops", plan_key=plan.key, action="resume")
    assert resumed.step_serial == serial and resumed.step_started_at > plan.step_started_at
    decision = plan_schedule(plan_id=plan.pk, now=resumed.step_started_at + timedelta(seconds=30))
    assert decision.move == "wait" and "hold (30 of 60 s)" in decision.reason  # the data is there; the hold is not
    assert plan_schedule(plan_id=plan.pk, now=resumed.step_started_at + timedelta(seconds=61)).move == "advance"


def test_postmortem__downloadable_from_the_plan_page_in_the_admin(client):
    from django.urls import reverse

    plan = plan_at_first_step()
    client.force_login(factories.make_staff_user("chief", superuser=True))
    page = client.get(reverse("admin:migrations_app_migrationplan_change", args=[plan.pk])).content.decode()
    url = reverse("admin:migrations_app_migrationplan_postmortem", args=[plan.pk])
    assert url in page
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Disposition"].endswith('postmortem-support-bot.md"')
    assert response.content.decode().startswith("# Postmortem: support-bot")
