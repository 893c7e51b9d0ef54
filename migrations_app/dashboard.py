"""Reads for the plan dashboard: per-arm metric series from the per-minute rollups, the phase timeline and the
candidate percent from the audit trail, shadow disagreement against the noise floor, rule verdicts, firing
alerts. Nothing here writes.

Series come in the shape the chart library takes: one list of timestamps (Unix seconds, each a bucket's
start) and one list of values per series, None where a bucket has no samples. A long window is summed into
coarser buckets so a chart never gets more than MAX_POINTS points.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncMinute

from .domain.lifecycle import TERMINAL_STATES, State
from .domain.rules import Metric
from .domain.statistics import ArmWindow, metric_value
from .models import Alert, AlertState, Arm, AuditEvent, MetricRollup, MigrationPlan, RuleStatus, ShadowComparison
from .selectors import plan_report, rollup_window, shadow_summary

MAX_POINTS = 360
DEFAULT_WINDOW_HOURS = 6
MAX_WINDOW_HOURS = 24 * 14
REFRESH_SECONDS = 5
AUDIT_ROWS = 15
# The per-arm charts, in the order the page shows them.
CHART_METRICS = (Metric.ERROR_RATE, Metric.LATENCY_P50, Metric.LATENCY_P95, Metric.COST_PER_REQUEST,
                 Metric.SATISFACTION)


def _epoch(moment: datetime) -> float:
    # Milliseconds kept: lifecycle moves made in the same second still draw in order.
    return round(moment.timestamp(), 3)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def resolution_minutes(span: timedelta) -> int:
    """The bucket width that keeps a span within MAX_POINTS points."""
    return max(1, math.ceil(span.total_seconds() / 60 / MAX_POINTS))


def _buckets(start: datetime, until: datetime, step: int) -> list[datetime]:
    first = _minute(start)
    count = int((until - first).total_seconds() // (60 * step)) + 1
    return [first + timedelta(minutes=step * i) for i in range(count)]


def _bucket_of(moment: datetime, start: datetime, step: int) -> int:
    return int((moment - _minute(start)).total_seconds() // (60 * step))


def window_start(*, plan: MigrationPlan, now: datetime, hours: float) -> datetime:
    """The charts' left edge: `hours` back, but not before the plan's first data (a plan started ten minutes
    ago gets ten minutes of chart, not six hours of empty axis)."""
    earliest = now - timedelta(hours=hours)
    first = (MetricRollup.objects.filter(plan=plan, minute__gte=_minute(earliest)).order_by("minute")
             .values_list("minute", flat=True).first())
    return _minute(max(earliest, first or _minute(now)))


def arm_series(*, plan: MigrationPlan, since: datetime, until: datetime) -> dict:
    """Per bucket and arm: requests per minute and each CHART_METRICS metric, from the rollups (all step
    serials of a minute summed)."""
    step = resolution_minutes(until - since)
    buckets = _buckets(since, until, step)
    windows: dict[str, list[ArmWindow]] = {arm: [ArmWindow.empty()] * len(buckets) for arm in Arm.values}
    rows = MetricRollup.objects.filter(plan=plan, minute__gte=_minute(since), minute__lte=until)
    for row in rows.order_by("minute"):
        index = _bucket_of(row.minute, since, step)
        if 0 <= index < len(buckets):
            windows[row.arm][index] = windows[row.arm][index] + rollup_window(row)
    return {
        "t": [_epoch(moment) for moment in buckets],
        "resolution_minutes": step,
        "arms": {
            arm: {
                "requests_per_minute": [window.requests / step if window.requests else None
                                        for window in arm_windows],
                "requests": sum(window.requests for window in arm_windows),
                **{metric.value: [_finite(metric_value(window, metric)) for window in arm_windows]
                   for metric in CHART_METRICS},
            }
            for arm, arm_windows in windows.items()
        },
    }


def _moves(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    return [event for event in events if event.action.startswith("plan.") and "state" in (event.after or {})]


def phase_timeline(*, plan: MigrationPlan, now: datetime) -> dict:
    """The plan's phases (a state held from one lifecycle event to the next) and the candidate percent as a
    step function, both read from the audit trail."""
    moves = _moves(AuditEvent.objects.filter(plan=plan).order_by("created_at", "id"))
    phases = []
    for current, following in zip(moves, [*moves[1:], None], strict=True):
        end = following.created_at if following else now
        phases.append({"state": current.after["state"], "action": current.action.removeprefix("plan."),
                       "percent": current.after.get("candidate_percent", 0.0), "start": _epoch(current.created_at),
                       "end": _epoch(end), "reason": current.reason})
    # One point per change (the chart draws steps), and one at `now` so the line reaches the present.
    times = [phase["start"] for phase in phases]
    percents = [phase["percent"] for phase in phases]
    if times:
        times.append(_epoch(now))
        percents.append(percents[-1])
    return {"phases": phases, "percent": {"t": times, "candidate_percent": percents}}


def shadow_series(*, plan: MigrationPlan) -> dict:
    """Per bucket over all the plan's shadow comparisons: the share on which the candidate disagreed with
    the baseline, and the share on which the baseline disagreed with itself (the noise floor)."""
    rows = list(ShadowComparison.objects.filter(plan=plan).annotate(at=TruncMinute("created_at"))
                .values("at").order_by("at")
                .annotate(n=Count("id"), disagree=Count("id", filter=Q(disagree=True)),
                          noise_n=Count("id", filter=Q(noise_disagree__isnull=False)),
                          noise_disagree=Count("id", filter=Q(noise_disagree=True))))
    if not rows:
        return {"t": [], "disagreement": [], "noise_floor": [], "resolution_minutes": 1}
    start, end = rows[0]["at"], rows[-1]["at"]
    step = resolution_minutes(end - start)
    buckets = _buckets(start, end, step)
    sums = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        total = sums[_bucket_of(row["at"], start, step)]
        for position, name in enumerate(("n", "disagree", "noise_n", "noise_disagree")):
            total[position] += row[name]
    return {
        "t": [_epoch(moment) for moment in buckets],
        "resolution_minutes": step,
        "disagreement": [sums[i][1] / sums[i][0] if sums[i][0] else None for i in range(len(buckets))],
        "noise_floor": [sums[i][3] / sums[i][2] if sums[i][2] else None for i in range(len(buckets))],
    }


def shadow_figures(*, plan: MigrationPlan) -> dict:
    summary = shadow_summary(plan=plan, worst=0)
    return {
        "comparisons": summary.comparisons, "noise_samples": summary.noise_samples,
        "noise_floor": summary.noise_floor, "disagreement": summary.disagreement,
        "disagreement_above_noise": summary.disagreement_above_noise,
        "interval": list(summary.interval) if summary.interval else None,
        "max_disagreement": plan.shadow_max_disagreement, "min_comparisons": plan.shadow_min_comparisons,
        "candidate_failures": summary.candidate_failures, "verdict": summary.verdict,
    }


def rule_rows(*, plan: MigrationPlan, now: datetime) -> list[dict]:
    """Each enabled rule with the health checker's latest verdict (RuleStatus); a rule the checker has not
    judged yet (or a plan it does not watch) shows the verdict over the current step, computed now."""
    rules = list(plan.rules.filter(enabled=True).order_by("id"))
    statuses = {status.rule_id: status for status in RuleStatus.objects.filter(rule__in=rules)}
    live = {}
    if any(rule.pk not in statuses for rule in rules):
        live = {row["id"]: row for row in plan_report(plan=plan, now=now)["rules"]}
    result = []
    for rule in rules:
        status = statuses.get(rule.pk)
        verdict = status.evidence if status else live.get(rule.pk, {})
        result.append({
            "id": rule.pk, "metric": rule.metric, "comparison": rule.comparison, "threshold": rule.threshold,
            "action": rule.action, "severity": rule.severity, "sustained_seconds": rule.sustained_seconds,
            "min_samples": rule.min_samples,
            "verdict": status.verdict if status else verdict.get("status", "not_enough_data"),
            "summary": (status.summary if status else "") or verdict.get("summary", ""),
            "candidate_value": verdict.get("candidate_value"), "baseline_value": verdict.get("baseline_value"),
            "effect": verdict.get("effect"), "interval": verdict.get("interval"),
            "samples": verdict.get("samples"),
            "breached_since": _epoch(status.breached_since) if status and status.breached_since else None,
            "evaluated_at": _epoch(status.evaluated_at) if status and status.evaluated_at else None,
            "source": "health checker" if status else "computed now",
        })
    return result


def firing_alerts(*, plan: MigrationPlan) -> list[dict]:
    return [
        {"id": alert.pk, "name": alert.name, "severity": alert.severity, "action": alert.action,
         "summary": alert.summary, "metric": alert.metric, "observed": alert.observed, "baseline": alert.baseline,
         "first_seen": _epoch(alert.first_seen), "last_seen": _epoch(alert.last_seen)}
        for alert in Alert.objects.filter(plan=plan, state=AlertState.FIRING).order_by("-first_seen", "-id")
    ]


def recent_audit_events(*, plan: MigrationPlan, limit: int = AUDIT_ROWS) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(plan=plan).order_by("-created_at", "-id")[:limit])


def plan_status(*, plan: MigrationPlan) -> dict:
    steps = list(plan.steps.order_by("order").values_list("percent", flat=True))
    return {
        "id": plan.pk, "key": plan.key, "environment": plan.environment.name, "state": plan.state,
        "paused_from": plan.paused_from, "candidate_percent": plan.candidate_percent, "rollback": plan.rollback,
        "baseline": str(plan.baseline), "candidate": str(plan.candidate),
        "step": None if plan.current_step_index is None else plan.current_step_index + 1, "steps": steps,
        "step_started_at": _epoch(plan.step_started_at), "terminal": State(plan.state) in TERMINAL_STATES,
        "config_version": plan.config_version,
    }


def dashboard_data(*, plan: MigrationPlan, now: datetime, hours: float = DEFAULT_WINDOW_HOURS) -> dict:
    """Everything the dashboard draws, JSON-able, except the audit trail's rows (recent_audit_events), which
    the admin describes with its own before → after formatting."""
    hours = min(max(hours, 1 / 60), MAX_WINDOW_HOURS)
    since = window_start(plan=plan, now=now, hours=hours)
    return {
        "generated_at": _epoch(now),
        "refresh_seconds": REFRESH_SECONDS,
        "window": {"hours": hours, "since": _epoch(since), "until": _epoch(now)},
        "plan": plan_status(plan=plan),
        "series": arm_series(plan=plan, since=since, until=now),
        "timeline": phase_timeline(plan=plan, now=now),
        "shadow": {**shadow_figures(plan=plan), "series": shadow_series(plan=plan)},
        "rules": rule_rows(plan=plan, now=now),
        "alerts": firing_alerts(plan=plan),
    }
