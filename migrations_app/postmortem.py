"""The postmortem: a Markdown report of a migration, built from the audit trail, the per-minute rollups and
the alerts, with headed sections for people to fill in."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .domain.health import evaluate_rule
from .domain.rules import LOWER_IS_WORSE, Comparison, Metric
from .domain.statistics import ArmWindow, metric_value
from .models import Alert, AuditEvent, MigrationPlan
from .selectors import arm_windows

# The deltas a postmortem reports, each as candidate / baseline with an always-valid interval.
HEADLINE_METRICS = (Metric.ERROR_RATE, Metric.LATENCY_P50, Metric.LATENCY_P95, Metric.COST_PER_REQUEST,
                    Metric.SATISFACTION, Metric.FORMAT_COMPLIANCE)


@dataclass(frozen=True)
class Phase:
    state: str
    percent: float
    started: datetime
    ended: datetime


def _phases(events: list[AuditEvent], now: datetime) -> list[Phase]:
    moves = [e for e in events if e.action.startswith("plan.") and "state" in e.after]
    phases = []
    for current, following in zip(moves, [*moves[1:], None], strict=True):
        phases.append(Phase(current.after["state"], current.after.get("candidate_percent", 0.0), current.created_at,
                            following.created_at if following else now))
    return phases


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
             f"{seconds} s" if seconds or not (days or hours or minutes) else ""]
    return " ".join(part for part in parts if part)


def _value(window: ArmWindow, metric: Metric) -> str:
    value = metric_value(window, metric)
    if value is None:
        return "–"
    if metric in (Metric.LATENCY_P50, Metric.LATENCY_P95):
        return f"{value:,.0f} ms"
    if metric is Metric.COST_PER_REQUEST:
        return f"${value:.5f}"
    return f"{value:.1%}" if metric is not Metric.SATISFACTION else f"{value:.2f}"


def _delta_line(metric: Metric, candidate: ArmWindow, baseline: ArmWindow) -> str:
    # The threshold only places the verdict; the effect and its interval are what a postmortem reports.
    verdict = evaluate_rule(metric=metric, comparison=Comparison.RATIO,
                            threshold=0.8 if metric in LOWER_IS_WORSE else 1.5, min_samples=1,
                            candidate=candidate, baseline=baseline)
    if verdict.effect is None:
        return f"| {metric.value} | {_value(baseline, metric)} | {_value(candidate, metric)} | not enough data |"
    low, high = verdict.interval or (None, None)
    interval = f"{low:.2f}×–{high:.2f}×" if low is not None and high not in (None, float("inf")) else "unbounded"
    return (f"| {metric.value} | {_value(baseline, metric)} | {_value(candidate, metric)} | "
            f"{verdict.effect:.2f}× ({interval}) |")


def postmortem_markdown(*, plan: MigrationPlan, now: datetime | None = None) -> str:
    now = now or timezone.now()
    events = list(AuditEvent.objects.filter(plan=plan).order_by("created_at", "id"))
    phases = _phases(events, now)
    started = next((p.started for p in phases if p.state != "draft"), None)
    lines = [
        f"# Postmortem: {plan.key}",
        "",
        f"Migration of **{plan.environment.name}** traffic from `{plan.baseline.model}` ({plan.baseline.provider}) "
        f"to `{plan.candidate.model}` ({plan.candidate.provider}).",
        "",
        f"- Outcome: **{plan.state.replace('_', ' ')}** at {plan.candidate_percent:g} % candidate traffic",
        f"- Started: {started:%Y-%m-%d %H:%M:%S} UTC" if started else "- Started: never",
        f"- Total migration time: {_duration(now - started)}" if started else "- Total migration time: –",
        f"- Rollbacks: {sum(e.action == 'plan.rollback' for e in events)}; "
        f"alerts: {Alert.objects.filter(plan=plan).count()}",
        "",
        "## Timeline",
        "",
        "| time (UTC) | actor | event | state | candidate % | reason |",
        "|---|---|---|---|---|---|",
    ]
    for event in events:
        after = event.after or {}
        lines.append(f"| {event.created_at:%Y-%m-%d %H:%M:%S} | {event.actor} | {event.action} | "
                     f"{after.get('state', '')} | {after.get('candidate_percent', '')} | "
                     f"{(event.reason or '').replace('|', '/')} |")

    lines += ["", "## Phases", "",
              "| phase | candidate % | duration | requests (baseline / candidate) | error rate | p95 latency | "
              "cost per request |", "|---|---|---|---|---|---|---|"]
    rollout = [p for p in phases if p.state in ("rolling_out", "optimizing", "completed", "paused", "rolled_back")]
    for phase in phases:
        windows = arm_windows(plan_id=plan.pk, since=phase.started, until=phase.ended)
        b, c = windows["baseline"], windows["candidate"]
        lines.append(
            f"| {phase.state} | {phase.percent:g} | {_duration(phase.ended - phase.started)} | "
            f"{b.requests:,} / {c.requests:,} | {_value(b, Metric.ERROR_RATE)} / {_value(c, Metric.ERROR_RATE)} | "
            f"{_value(b, Metric.LATENCY_P95)} / {_value(c, Metric.LATENCY_P95)} | "
            f"{_value(b, Metric.COST_PER_REQUEST)} / {_value(c, Metric.COST_PER_REQUEST)} |")

    lines += ["", "## Quality, latency and cost: candidate against baseline", "",
              "Over the whole live rollout; ratios with their always-valid 99 % intervals.", "",
              "| metric | baseline | candidate | candidate / baseline |", "|---|---|---|---|"]
    if rollout:
        windows = arm_windows(plan_id=plan.pk, since=rollout[0].started, until=now)
        lines += [_delta_line(metric, windows["candidate"], windows["baseline"]) for metric in HEADLINE_METRICS]
    else:
        lines.append("| – | – | – | the plan never served live traffic |")

    lines += ["", "## Alerts and rollbacks", ""]
    alerts = list(Alert.objects.filter(plan=plan).order_by("first_seen"))
    lines += [f"- {a.first_seen:%Y-%m-%d %H:%M:%S} **{a.name}** ({a.severity}, {a.state}): {a.summary}"
              for a in alerts] or ["- none"]
    lines += ["", "## What went well", "", "_To be filled in by the team._", "",
              "## What to improve", "", "_To be filled in by the team._", ""]
    return "\n".join(lines)
