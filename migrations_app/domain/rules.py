"""The vocabulary of health rules and rollout steps, and the checks that keep them meaningful."""

from collections.abc import Sequence
from enum import StrEnum


class Metric(StrEnum):
    ERROR_RATE = "error_rate"
    TIMEOUT_RATE = "timeout_rate"
    FALLBACK_RATE = "fallback_rate"
    LATENCY_P50 = "latency_p50"
    LATENCY_P95 = "latency_p95"
    LATENCY_P99 = "latency_p99"
    TTFT_P95 = "ttft_p95"
    SATISFACTION = "satisfaction"
    TASK_COMPLETION = "task_completion"
    COST_PER_REQUEST = "cost_per_request"
    FORMAT_COMPLIANCE = "format_compliance"
    REFUSAL_RATE = "refusal_rate"


# For these a lower candidate value is the regression; for every other metric a higher one is.
LOWER_IS_WORSE = frozenset({Metric.SATISFACTION, Metric.TASK_COMPLETION, Metric.FORMAT_COMPLIANCE})
# Proportions and scores live in [0, 1].
UNIT_INTERVAL_METRICS = frozenset(
    {
        Metric.ERROR_RATE, Metric.TIMEOUT_RATE, Metric.FALLBACK_RATE, Metric.SATISFACTION,
        Metric.TASK_COMPLETION, Metric.FORMAT_COMPLIANCE, Metric.REFUSAL_RATE,
    }
)


class Comparison(StrEnum):
    RATIO = "ratio"  # candidate / baseline
    DELTA = "delta"  # candidate − baseline
    ABSOLUTE = "absolute"  # candidate alone


class RuleAction(StrEnum):
    ALERT = "alert"
    ROLLBACK = "rollback"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def threshold_problem(metric: Metric, comparison: Comparison, threshold: float) -> str | None:
    """Why this threshold cannot work, or None.

    A threshold is always a positive number read in the direction of harm: for a metric where higher is
    worse, a ratio of 1.3 fires above 1.3× the baseline; for one where lower is worse, a ratio of 0.8
    fires below 0.8× the baseline and a delta of 0.15 fires below the baseline − 0.15.
    """
    if not threshold > 0:
        return "must be a positive number"
    if comparison is Comparison.RATIO:
        if metric in LOWER_IS_WORSE and threshold > 1:
            return f"a ratio above 1 would fire while {metric.value} is better than the baseline's; use e.g. 0.8"
        if metric not in LOWER_IS_WORSE and threshold < 1:
            return f"a ratio below 1 would fire while {metric.value} is better than the baseline's; use e.g. 1.5"
    if comparison in (Comparison.DELTA, Comparison.ABSOLUTE) and metric in UNIT_INTERVAL_METRICS and threshold > 1:
        return f"{metric.value} lies in [0, 1], so a {comparison.value} threshold above 1 can never fire"
    return None


def breaches(metric: Metric, comparison: Comparison, threshold: float, *, candidate: float,
             baseline: float | None) -> bool:
    """Whether the point values cross the threshold in the direction of harm (no statistics here)."""
    lower_is_worse = metric in LOWER_IS_WORSE
    if comparison is Comparison.ABSOLUTE:
        return candidate < threshold if lower_is_worse else candidate > threshold
    if baseline is None:
        return False
    if comparison is Comparison.DELTA:
        delta = candidate - baseline
        return delta < -threshold if lower_is_worse else delta > threshold
    if baseline == 0:
        return candidate > 0 and not lower_is_worse
    ratio = candidate / baseline
    return ratio < threshold if lower_is_worse else ratio > threshold


def step_percent_problems(percents: Sequence[float]) -> dict[int, str]:
    """Problems by step index: every percent within (0, 100] and strictly above the one before."""
    problems: dict[int, str] = {}
    previous = 0.0
    for index, percent in enumerate(percents):
        if not 0 < percent <= 100:
            problems[index] = "must be above 0 and at most 100"
        elif percent <= previous:
            problems[index] = f"must be above the previous step's {previous:g}"
        previous = max(previous, percent)
    return problems
