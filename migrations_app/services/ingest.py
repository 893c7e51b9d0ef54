"""Ingest of per-request events and feedback: all or nothing, idempotent on ids, folded into per-minute
rollups in the same transaction so the health checker never scans raw events."""

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from cutover.providers.pricing import cost_usd

from ..domain.events import BatchInvalid, EventIn, parse_events, parse_feedback
from ..domain.histogram import BUCKET_COUNT, merge
from ..domain.rollup import RollupKey, fold_events, fold_feedback
from ..domain.statistics import ArmWindow
from ..models import MetricRollup, MigrationPlan, RequestEvent, RequestFeedback

_HISTOGRAMS = ("latency_hist", "ttft_hist")
_SCALARS = tuple(f.name for f in fields(ArmWindow) if f.name not in _HISTOGRAMS)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicate: int


def _environment_plans(environment_id: int) -> dict[str, MigrationPlan]:
    plans = MigrationPlan.objects.filter(environment_id=environment_id).select_related("baseline", "candidate")
    return {plan.key: plan for plan in plans}


def events_ingest(*, environment_id: int, payload: object) -> IngestResult:
    """Validate a batch `{"events": [...]}` whole (BatchInvalid names each bad field) and store it."""
    plans = _environment_plans(environment_id)
    events = parse_events(payload, now=timezone.now(), plans=plans)
    specs = {(key, "baseline"): plan.baseline.spec() for key, plan in plans.items()} | {
        (key, "candidate"): plan.candidate.spec() for key, plan in plans.items()}

    def cost_of(event: EventIn) -> float:
        if event.cost is not None:
            return event.cost
        return cost_usd(specs[event.plan, event.arm], input_tokens=event.input_tokens,
                        output_tokens=event.output_tokens)

    received_at = timezone.now()
    with transaction.atomic():
        # Locking the rollup rows first serialises batches that touch the same minutes, so a batch sent
        # twice at once is counted once.
        rows = _locked_rollups({(e.plan, e.arm, _minute(e.ts)) for e in events}, plans)
        new = _insert_new_events(events, plans, cost_of, received_at)
        _add_to_rollups(rows, fold_events(new, cost_of))
    return IngestResult(accepted=len(new), duplicate=len(events) - len(new))


def _insert_new_events(events: list[EventIn], plans: dict[str, MigrationPlan], cost_of: Callable[[EventIn], float],
                       received_at: datetime) -> list[EventIn]:
    """Store the events whose ids are not stored yet; those events, in batch order."""
    if connection.vendor == "postgresql":
        # One statement, no model instances: the batch travels as one JSON document that PostgreSQL turns
        # into rows of the table's own type; ON CONFLICT skips stored ids (waiting for a concurrent
        # transaction's verdict on the same id) and RETURNING names exactly the rows this one stored.
        table = connection.ops.quote_name(RequestEvent._meta.db_table)
        document = json.dumps([
            {"id": str(e.id), "plan_id": plans[e.plan].pk, "arm": e.arm, "ts": e.ts.isoformat(),
             "latency_ms": e.latency_ms, "ttft_ms": e.ttft_ms, "outcome": e.outcome, "error_type": e.error_type,
             "input_tokens": e.input_tokens, "output_tokens": e.output_tokens, "cost": cost_of(e),
             "retries": e.retries, "fell_back": e.fell_back, "format_ok": e.format_ok, "refusal": e.refusal,
             "segment": e.segment, "received_at": received_at.isoformat()}
            for e in events
        ])
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, %s) "
                           "ON CONFLICT (id) DO NOTHING RETURNING id", [document])
            stored = {row[0] for row in cursor.fetchall()}
        return [e for e in events if e.id in stored]
    existing = set(RequestEvent.objects.filter(id__in=[e.id for e in events]).values_list("id", flat=True))
    new = [e for e in events if e.id not in existing]
    RequestEvent.objects.bulk_create(
        [RequestEvent(id=e.id, plan=plans[e.plan], arm=e.arm, ts=e.ts, latency_ms=e.latency_ms,
                      ttft_ms=e.ttft_ms, outcome=e.outcome, error_type=e.error_type,
                      input_tokens=e.input_tokens, output_tokens=e.output_tokens, cost=cost_of(e),
                      retries=e.retries, fell_back=e.fell_back, format_ok=e.format_ok, refusal=e.refusal,
                      segment=e.segment, received_at=received_at) for e in new],
        batch_size=1000,
    )
    return new


def feedback_ingest(*, environment_id: int, payload: object) -> IngestResult:
    """Feedback names a request id; its plan and arm come from that request's event (or, for a request not
    reported yet, from the feedback's own plan and arm)."""
    plans = _environment_plans(environment_id)
    feedback = parse_feedback(payload, now=timezone.now(), plans=plans)
    known = {
        event_id: (plan_key, arm)
        for event_id, plan_key, arm in RequestEvent.objects.filter(
            id__in=[f.request_id for f in feedback], plan__environment_id=environment_id
        ).values_list("id", "plan__key", "arm")
    }
    errors = [{} if f.request_id in known or (f.plan and f.arm) else
              {"request_id": ["no such request reported in this environment; give plan and arm too"]}
              for f in feedback]
    if any(errors):
        raise BatchInvalid({"feedback": errors})
    placed = [(f, *known.get(f.request_id, (f.plan, f.arm))) for f in feedback]
    received_at = timezone.now()
    with transaction.atomic():
        rows = _locked_rollups({(plan, arm, _minute(f.ts)) for f, plan, arm in placed}, plans)
        existing = set(RequestFeedback.objects.filter(request_id__in=[f.request_id for f in feedback])
                       .values_list("request_id", flat=True))
        new = [(f, plan, arm) for f, plan, arm in placed if f.request_id not in existing]
        RequestFeedback.objects.bulk_create(
            RequestFeedback(request_id=f.request_id, plan=plans[plan], arm=arm, score=f.score,
                            task_completed=f.task_completed, ts=f.ts, received_at=received_at)
            for f, plan, arm in new
        )
        _add_to_rollups(rows, fold_feedback(new))
    return IngestResult(accepted=len(new), duplicate=len(feedback) - len(new))


def _minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def _locked_rollups(keys: set[RollupKey], plans: dict[str, MigrationPlan]) -> dict[RollupKey, MetricRollup]:
    # New rows are inserted in one order everywhere (a set's order differs between processes), so two
    # batches creating the same minutes cannot deadlock on the unique index.
    MetricRollup.objects.bulk_create(
        [MetricRollup(plan=plans[plan], step_serial=plans[plan].step_serial, arm=arm, minute=minute,
                      latency_hist=[0] * BUCKET_COUNT,
                      ttft_hist=[0] * BUCKET_COUNT) for plan, arm, minute in sorted(keys)],
        ignore_conflicts=True,
    )
    matching = Q()
    for plan, arm, minute in keys:
        matching |= Q(plan=plans[plan], step_serial=plans[plan].step_serial, arm=arm, minute=minute)
    rows = MetricRollup.objects.select_for_update().filter(matching).select_related("plan").order_by("id")
    return {(row.plan.key, row.arm, row.minute): row for row in rows}


def _add_to_rollups(rows: dict[RollupKey, MetricRollup], windows: dict[RollupKey, ArmWindow]) -> None:
    # One plain UPDATE per touched row (a batch touches a handful): bulk_update's CASE WHEN over every
    # column costs more to build than the rows cost to write.
    for key, window in windows.items():
        row = rows[key]
        values = {name: getattr(row, name) + getattr(window, name) for name in _SCALARS}
        for name in _HISTOGRAMS:
            values[name] = list(merge(getattr(row, name) or [0] * BUCKET_COUNT, getattr(window, name)))
        MetricRollup.objects.filter(pk=row.pk).update(**values)
        for name, value in values.items():
            setattr(row, name, value)


def events_prune(*, now: datetime | None = None) -> int:
    """Delete raw events and feedback older than the retention period; rollups stay."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.CUTOVER_EVENT_RETENTION_DAYS)
    deleted, _ = RequestEvent.objects.filter(received_at__lt=cutoff).delete()
    RequestFeedback.objects.filter(received_at__lt=cutoff).delete()
    return deleted
