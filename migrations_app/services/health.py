"""The health checker: every few seconds, each live plan's rules are judged on the per-minute rollups of
both arms since the plan entered its current step. A breach sustained for the rule's window fires an alert
and, for a rollback rule, rolls the plan back through the lifecycle service; an alert resolves only after
its rule has stayed clear for a while (hysteresis).

Ticks are idempotent: a plan is checked under its row lock, and a checker that finds it locked skips it,
so two checkers at once do no harm.
"""

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from .. import selectors
from ..domain.health import Status, Verdict, alpha_for, evaluate_rule
from ..domain.lifecycle import Action, IllegalTransition, State
from ..domain.rules import Comparison, Metric, RuleAction
from ..domain.schedule import MonitorLevel, monitor_level
from ..models import Alert, AlertState, HealthRule, MigrationPlan, RuleStatus
from .alerts import alert_fire_for_rule, alert_resolve
from .plans import plan_act

# Plans whose candidate serves users; a paused plan keeps serving its split, so it stays watched.
WATCHED_STATES = (State.ROLLING_OUT, State.OPTIMIZING, State.PAUSED)
ACTOR = "system:health-checker"


@dataclass(frozen=True)
class RuleOutcome:
    rule_id: int
    verdict: Verdict
    sustained: bool


def health_tick(*, now: datetime | None = None) -> int:
    """Check every watched plan; returns how many were checked."""
    now = now or timezone.now()
    checked = 0
    normal_due = now - timedelta(seconds=settings.CUTOVER_HEALTH_NORMAL_INTERVAL_SECONDS)
    for plan in MigrationPlan.objects.filter(state__in=WATCHED_STATES):
        # Closely watched steps are checked on every tick, the others at the normal interval.
        last = RuleStatus.objects.filter(rule__plan=plan).aggregate(last=Min("evaluated_at"))["last"]
        if plan_monitor_level(plan) is MonitorLevel.NORMAL and last is not None and last > normal_due:
            continue
        checked += plan_health_check(plan_id=plan.pk, now=now) is not None
    return checked


def plan_rule_verdicts(*, plan: MigrationPlan, now: datetime) -> list[tuple[HealthRule, Verdict]]:
    """Every enabled rule's verdict over the plan's current window (reads only)."""
    windows = selectors.current_step_windows(plan=plan, now=now)
    return [
        (rule, evaluate_rule(metric=Metric(rule.metric), comparison=Comparison(rule.comparison),
                             threshold=rule.threshold, min_samples=rule.min_samples,
                             candidate=windows["candidate"], baseline=windows["baseline"],
                             alpha=alpha_for(rule.action)))
        for rule in plan.rules.filter(enabled=True).order_by("id")
    ]


def plan_health_check(*, plan_id: int, now: datetime) -> list[RuleOutcome] | None:
    """Judge one plan's rules and act on sustained breaches. None when another checker holds the plan or it
    is no longer watched."""
    with transaction.atomic():
        plan = MigrationPlan.objects.select_for_update(skip_locked=True).filter(pk=plan_id).first()
        if plan is None or plan.state not in WATCHED_STATES:
            return None
        if plan.state == State.PAUSED and plan.paused_from not in (State.ROLLING_OUT, State.OPTIMIZING):
            return None
        closely = plan_monitor_level(plan) is MonitorLevel.CLOSELY
        outcomes, rollback_because = [], None
        for rule, verdict in plan_rule_verdicts(plan=plan, now=now):
            status = _remember(rule, verdict, now)
            sustained = status.breached_since is not None and (
                now - status.breached_since >= timedelta(seconds=rule.sustained_seconds))
            outcomes.append(RuleOutcome(rule.pk, verdict, sustained))
            if sustained:
                rolls_back = rule.action == RuleAction.ROLLBACK or closely
                alert_fire_for_rule(plan=plan, rule=rule, verdict=verdict, now=now, rolls_back=rolls_back)
                if rolls_back:
                    # One rollback, one page: the first rule that rolls the plan back explains it.
                    rollback_because = verdict
                    break
            elif status.clear_since is not None and now - status.clear_since >= _clear_for(rule):
                for alert in Alert.objects.filter(plan=plan, rule=rule, state=AlertState.FIRING):
                    alert_resolve(alert=alert, now=now)
        if rollback_because is not None:
            with suppress(IllegalTransition):  # e.g. paused from a state that cannot roll back
                plan_act(actor=ACTOR, plan_key=plan.key, action=Action.ROLLBACK,
                         reason=f"automatic rollback: {rollback_because.summary}",
                         evidence=rollback_because.as_dict(), page_on_rollback=False)
    return outcomes


def plan_monitor_level(plan: MigrationPlan) -> MonitorLevel:
    """How closely the plan's current step is watched (the playbook: closely at 5 % and 25 %)."""
    step_index = plan.current_step_index
    if plan.state == State.PAUSED or step_index is None:
        return MonitorLevel.NORMAL
    step = plan.steps.filter(order=step_index).first()
    return monitor_level(step.percent, step.monitor) if step else MonitorLevel.NORMAL


def _clear_for(rule: HealthRule) -> timedelta:
    return timedelta(seconds=max(rule.sustained_seconds, settings.CUTOVER_ALERT_MIN_CLEAR_SECONDS))


def _remember(rule: HealthRule, verdict: Verdict, now: datetime) -> RuleStatus:
    status, _ = RuleStatus.objects.get_or_create(rule=rule)
    breached = verdict.status == Status.BREACHED
    if breached:
        status.breached_since = status.breached_since or now
        status.clear_since = None
    else:
        status.breached_since = None
        status.clear_since = status.clear_since or now
    status.verdict = str(verdict.status)
    status.summary = verdict.summary
    status.evidence = verdict.as_dict()
    status.evaluated_at = now
    status.save()
    return status
