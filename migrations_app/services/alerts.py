"""Alerts: fired by the health checker or a rollback, resolved once clear; each transition notifies."""

import uuid
from datetime import datetime

from django.utils import timezone

from ..domain.alerts import ROLLED_BACK, alert_name
from ..domain.rules import Severity
from ..models import Alert, AlertState, HealthRule, MigrationPlan
from .notifications import alert_notify


def _dedup_key(plan: MigrationPlan, name: str) -> str:
    # Stable for the life of one incident (PagerDuty groups trigger and resolve by it).
    return f"cutover/{plan.key}/{name}/{uuid.uuid4().hex[:12]}"


def alert_fire_for_rule(*, plan: MigrationPlan, rule: HealthRule, verdict, now: datetime,
                        rolls_back: bool = False) -> Alert:
    """The rule's firing alert, created (and notified) if there is none; call with the plan row locked.
    `rolls_back`: this breach rolls the plan back (a rollback rule, or an alert rule on a closely monitored
    step), so the alert pages as a critical rollback."""
    name = alert_name(rule.metric)
    latest = {"summary": f"{name} {plan.key}: {verdict.summary}", "observed": verdict.candidate_value,
              "baseline": verdict.baseline_value, "evidence": verdict.as_dict(), "last_seen": now}
    alert = Alert.objects.filter(plan=plan, rule=rule, state=AlertState.FIRING).first()
    if alert is not None:
        for field, value in latest.items():
            setattr(alert, field, value)
        alert.save(update_fields=list(latest))
        return alert
    alert = Alert.objects.create(
        plan=plan, rule=rule, name=name, metric=rule.metric,
        severity=Severity.CRITICAL if rolls_back else rule.severity, action="rollback" if rolls_back else rule.action,
        dedup_key=_dedup_key(plan, name), first_seen=now, **latest,
    )
    alert_notify(alert=alert, event="trigger")
    return alert


def alert_fire_for_rollback(*, plan: MigrationPlan, actor: str, reason: str) -> Alert:
    """A rollback an operator asked for pages like an automatic one."""
    now = timezone.now()
    alert = Alert.objects.create(
        plan=plan, name=ROLLED_BACK, severity=Severity.CRITICAL, action="rollback",
        dedup_key=_dedup_key(plan, ROLLED_BACK),
        summary=f"{ROLLED_BACK} {plan.key}: rolled back by {actor}" + (f": {reason}" if reason else ""),
        evidence={"actor": actor, "reason": reason}, first_seen=now, last_seen=now,
    )
    alert_notify(alert=alert, event="trigger")
    return alert


def alert_resolve(*, alert: Alert, now: datetime | None = None) -> Alert:
    if alert.state == AlertState.RESOLVED:
        return alert
    alert.state = AlertState.RESOLVED
    alert.resolved_at = now or timezone.now()
    alert.save(update_fields=["state", "resolved_at"])
    alert_notify(alert=alert, event="resolve")
    return alert


def alerts_resolve_plan_level(*, plan: MigrationPlan) -> None:
    """Alerts about the plan as a whole (a rollback, a pause) are over once the plan moves on."""
    for alert in Alert.objects.filter(plan=plan, rule=None, state=AlertState.FIRING):
        alert_resolve(alert=alert)




def alert_fire_for_plan(*, plan: MigrationPlan, name: str, summary: str,
                        severity: str = Severity.WARNING) -> Alert:
    """An alert about the plan as a whole (the scheduler paused it), resolved when the plan moves on."""
    now = timezone.now()
    alert = Alert.objects.create(
        plan=plan, name=name, severity=severity, action="alert", dedup_key=_dedup_key(plan, name),
        summary=f"{name} {plan.key}: {summary}", evidence={"reason": summary}, first_seen=now, last_seen=now,
    )
    alert_notify(alert=alert, event="trigger")
    return alert
