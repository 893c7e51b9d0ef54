"""The rollout scheduler's tick: moves each running plan through its phases when the evidence allows,
pauses it (and tells a person) when the analysis cannot conclude or a gate fails.

Idempotent: each plan is decided under its row lock, and a tick that finds the plan locked skips it. The
lifecycle service applies every move, so a tick after a crash, or two schedulers at once, advance a plan at
most once: the second sees the new step's fresh start and waits out its hold.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..domain.lifecycle import Action, State
from ..domain.schedule import (
    Decision,
    Move,
    ShadowFacts,
    StepFacts,
    evaluation_decision,
    optimizing_decision,
    rollout_decision,
    shadow_decision,
    step_deadline_seconds,
)
from ..models import MigrationPlan
from .alerts import alert_fire_for_plan
from .health import plan_rule_verdicts
from .plans import plan_act

ACTOR = "system:scheduler"
SCHEDULED_STATES = (State.EVALUATING, State.SHADOWING, State.ROLLING_OUT, State.OPTIMIZING)


def rollout_tick(*, now: datetime | None = None) -> dict[str, Decision]:
    """Decide and apply the next move of every running plan; returns each checked plan's decision."""
    now = now or timezone.now()
    decisions = {}
    for plan_id in MigrationPlan.objects.filter(state__in=SCHEDULED_STATES).values_list("id", flat=True):
        decision = plan_schedule(plan_id=plan_id, now=now)
        if decision is not None:
            decisions[plan_id] = decision
    return decisions


def plan_schedule(*, plan_id: int, now: datetime) -> Decision | None:
    with transaction.atomic():
        plan = MigrationPlan.objects.select_for_update(skip_locked=True).filter(pk=plan_id).first()
        if plan is None or plan.state not in SCHEDULED_STATES:
            return None
        decision = plan_decision(plan=plan, now=now)
        if decision.move is Move.ADVANCE:
            plan_act(actor=ACTOR, plan_key=plan.key, action=Action.ADVANCE, reason=decision.reason)
        elif decision.move is Move.PAUSE:
            plan_act(actor=ACTOR, plan_key=plan.key, action=Action.PAUSE, reason=decision.reason)
            alert_fire_for_plan(plan=plan, name=_pause_alert_name(plan.state), summary=decision.reason)
    return decision


def _pause_alert_name(state: str) -> str:
    return {State.EVALUATING: "EVALUATION_FAILED", State.SHADOWING: "SHADOW_DISAGREEMENT_HIGH"}.get(
        state, "ANALYSIS_INCONCLUSIVE")


def plan_decision(*, plan: MigrationPlan, now: datetime) -> Decision:
    """What the scheduler would do with the plan now (reads only)."""
    elapsed = (now - plan.step_started_at).total_seconds()
    if plan.state == State.EVALUATING:
        return evaluation_decision(gate=selectors.evaluation_gate(plan=plan))
    if plan.state == State.SHADOWING:
        summary = selectors.shadow_summary(plan=plan, since=plan.step_started_at)
        return shadow_decision(ShadowFacts(
            elapsed_seconds=elapsed, duration_seconds=plan.shadow_duration_seconds,
            comparisons=summary.comparisons, min_comparisons=plan.shadow_min_comparisons,
            disagreement_above_noise=summary.disagreement_above_noise,
            disagreement_above_noise_lower=summary.interval[0] if summary.interval else None,
            disagreement_above_noise_upper=summary.interval[1] if summary.interval else None,
            max_disagreement=plan.shadow_max_disagreement,
        ))
    if plan.state == State.OPTIMIZING:
        return optimizing_decision(elapsed_seconds=elapsed, cleanup_after_seconds=plan.cleanup_after_seconds)
    return rollout_decision(_step_facts(plan, now, elapsed))


def _step_facts(plan: MigrationPlan, now: datetime, elapsed: float) -> StepFacts:
    steps = list(plan.steps.order_by("order"))
    index = plan.current_step_index or 0
    step = steps[index]
    windows = selectors.current_step_windows(plan=plan, now=now)
    candidate, baseline = windows["candidate"], windows["baseline"]
    minutes = max(elapsed / 60, 1.0)
    is_last = index == len(steps) - 1
    return StepFacts(
        percent=step.percent, is_last=is_last, held_seconds=elapsed, min_hold_seconds=step.min_hold_seconds,
        final_hold_seconds=plan.final_hold_seconds, min_samples=step.min_samples,
        deadline_seconds=step_deadline_seconds(step.min_hold_seconds, step.deadline_seconds),
        needs_approval=step.needs_approval, candidate_requests=candidate.requests,
        baseline_requests=baseline.requests, candidate_rate_limited=candidate.rate_limited,
        rule_statuses=[str(verdict.status) for _, verdict in plan_rule_verdicts(plan=plan, now=now)],
        observed_requests_per_minute=(candidate.requests + baseline.requests) / minutes,
        candidate_rpm_limit=plan.candidate.requests_per_minute,
        next_percent=100.0 if is_last else steps[index + 1].percent,
    )
