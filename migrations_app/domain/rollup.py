"""Folding reported requests and feedback into per-minute, per-arm sufficient statistics."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime

from .events import EventIn, FeedbackIn
from .histogram import BUCKET_COUNT, bucket_index
from .statistics import ArmWindow

RollupKey = tuple[str, str, datetime]  # plan key, arm, minute


def minute_of(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


@dataclass
class _Accumulator:
    """A mutable ArmWindow, so folding a batch allocates once per key, not once per event."""

    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SCALAR_FIELDS, 0))
    latency_hist: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)
    ttft_hist: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)

    def freeze(self) -> ArmWindow:
        return ArmWindow(**self.counts, latency_hist=tuple(self.latency_hist), ttft_hist=tuple(self.ttft_hist))


_HISTOGRAMS = ("latency_hist", "ttft_hist")
_SCALAR_FIELDS = tuple(f.name for f in fields(ArmWindow) if f.name not in _HISTOGRAMS)


def fold_events(events: Iterable[EventIn], cost_of: Callable[[EventIn], float]) -> dict[RollupKey, ArmWindow]:
    accumulators: dict[RollupKey, _Accumulator] = {}
    for event in events:
        acc = accumulators.setdefault((event.plan, event.arm, minute_of(event.ts)), _Accumulator())
        c = acc.counts
        c["requests"] += 1
        if event.rate_limited:
            # A provider's 429 says the candidate lacks capacity, not quality: it holds a ramp instead of
            # counting toward the error rate.
            c["rate_limited"] += 1
        elif event.outcome == "error":
            c["errors"] += 1
        elif event.outcome == "timeout":
            c["timeouts"] += 1
        cost = cost_of(event)
        c["cost_sum"] += cost
        c["cost_sq_sum"] += cost * cost
        if event.outcome == "ok":
            c["successes"] += 1
            c["success_cost_sum"] += cost
        c["fallbacks"] += event.fell_back
        c["refusals"] += event.refusal
        if event.format_ok is not None:
            c["format_checked"] += 1
            c["format_ok"] += event.format_ok
        acc.latency_hist[bucket_index(event.latency_ms)] += 1
        if event.ttft_ms is not None:
            acc.ttft_hist[bucket_index(event.ttft_ms)] += 1
    return {key: acc.freeze() for key, acc in accumulators.items()}


def fold_feedback(feedback: Iterable[tuple[FeedbackIn, str, str]]) -> dict[RollupKey, ArmWindow]:
    """Feedback counts in the minute it arrived, beside the requests of that minute; items are
    (feedback, plan key, arm)."""
    accumulators: dict[RollupKey, _Accumulator] = {}
    for item, plan, arm in feedback:
        c = accumulators.setdefault((plan, arm, minute_of(item.ts)), _Accumulator()).counts
        if item.score is not None:
            c["feedback_count"] += 1
            c["satisfaction_sum"] += item.score
            c["satisfaction_sq_sum"] += item.score * item.score
        if item.task_completed is not None:
            c["task_reported"] += 1
            c["task_completed"] += item.task_completed
    return {key: acc.freeze() for key, acc in accumulators.items()}
