"""Sufficient statistics of one arm (baseline or candidate) over a time window, and point estimates of the
health metrics read from them.

An ArmWindow is summable: per-minute rollups add up to the window a rule looks at, and every metric, its
sample size and its always-valid interval (sequential.py, health.py) are computed from the sums alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from . import histogram
from .rules import Metric

PROPORTION_METRICS = frozenset(
    {Metric.ERROR_RATE, Metric.TIMEOUT_RATE, Metric.FALLBACK_RATE, Metric.REFUSAL_RATE,
     Metric.FORMAT_COMPLIANCE, Metric.TASK_COMPLETION}
)
MEAN_METRICS = frozenset({Metric.SATISFACTION, Metric.COST_PER_REQUEST})
# metric -> (which histogram, which quantile)
QUANTILE_METRICS = {
    Metric.LATENCY_P50: ("latency_hist", 0.50),
    Metric.LATENCY_P95: ("latency_hist", 0.95),
    Metric.LATENCY_P99: ("latency_hist", 0.99),
    Metric.TTFT_P95: ("ttft_hist", 0.95),
}


@dataclass(frozen=True)
class ArmWindow:
    requests: int = 0
    errors: int = 0  # outcome "error", not counting rate-limited (429) requests
    timeouts: int = 0
    rate_limited: int = 0
    fallbacks: int = 0
    successes: int = 0  # outcome "ok"
    latency_hist: tuple[int, ...] = ()  # histogram.py layout; () is an empty histogram
    ttft_hist: tuple[int, ...] = ()
    cost_sum: float = 0.0
    cost_sq_sum: float = 0.0
    success_cost_sum: float = 0.0
    format_checked: int = 0
    format_ok: int = 0
    refusals: int = 0
    feedback_count: int = 0
    satisfaction_sum: float = 0.0  # satisfaction scores lie in [0, 1]
    satisfaction_sq_sum: float = 0.0
    task_reported: int = 0
    task_completed: int = 0

    @classmethod
    def empty(cls) -> ArmWindow:
        return cls(latency_hist=histogram.empty(), ttft_hist=histogram.empty())

    def __add__(self, other: ArmWindow) -> ArmWindow:
        if not isinstance(other, ArmWindow):
            return NotImplemented
        values = {}
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            values[field.name] = histogram.merge(mine, theirs) if field.name.endswith("_hist") else mine + theirs
        return ArmWindow(**values)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (histograms become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmWindow:
        known = {field.name for field in fields(cls)}
        return cls(**{key: tuple(value) if key.endswith("_hist") else value
                      for key, value in data.items() if key in known})


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def proportion_counts(window: ArmWindow, metric: Metric) -> tuple[int, int]:
    """(events, trials) of a proportion metric."""
    return {
        Metric.ERROR_RATE: (window.errors, window.requests),
        Metric.TIMEOUT_RATE: (window.timeouts, window.requests),
        Metric.FALLBACK_RATE: (window.fallbacks, window.requests),
        Metric.REFUSAL_RATE: (window.refusals, window.requests),
        Metric.FORMAT_COMPLIANCE: (window.format_ok, window.format_checked),
        Metric.TASK_COMPLETION: (window.task_completed, window.task_reported),
    }[metric]


def mean_sums(window: ArmWindow, metric: Metric) -> tuple[float, float, int]:
    """(sum, sum of squares, n) of a mean metric."""
    if metric is Metric.SATISFACTION:
        return window.satisfaction_sum, window.satisfaction_sq_sum, window.feedback_count
    if metric is Metric.COST_PER_REQUEST:
        return window.cost_sum, window.cost_sq_sum, window.requests
    raise KeyError(metric)


def metric_histogram(window: ArmWindow, metric: Metric) -> tuple[tuple[int, ...], float]:
    """(counts, q) of a quantile metric."""
    name, q = QUANTILE_METRICS[metric]
    return getattr(window, name), q


def metric_value(window: ArmWindow, metric: Metric) -> float | None:
    """The point estimate of a metric over the window, or None when it has no samples."""
    metric = Metric(metric)
    if metric in PROPORTION_METRICS:
        return _ratio(*proportion_counts(window, metric))
    if metric in MEAN_METRICS:
        total, _, n = mean_sums(window, metric)
        return _ratio(total, n)
    counts, q = metric_histogram(window, metric)
    return histogram.quantile(counts, q) if counts else None


def metric_samples(window: ArmWindow, metric: Metric) -> int:
    """The n behind a metric: requests, feedback_count, task_reported, format_checked or histogram total."""
    metric = Metric(metric)
    if metric in PROPORTION_METRICS:
        return proportion_counts(window, metric)[1]
    if metric in MEAN_METRICS:
        return mean_sums(window, metric)[2]
    return histogram.total(metric_histogram(window, metric)[0])


def cost_per_successful_request(window: ArmWindow) -> float | None:
    """What one useful answer costs: all spend (failures cost money too) over successful requests."""
    return _ratio(window.cost_sum, window.successes)


def success_cost_share(window: ArmWindow) -> float | None:
    """The share of spend that bought successful answers."""
    return _ratio(window.success_cost_sum, window.cost_sum)
