"""One health rule, judged on the candidate's and the baseline's windows: a Verdict with its effect size,
its always-valid interval and the evidence behind the decision.

How a rule decides (thresholds are positive and read in the direction of harm, see rules.py):

* not_enough_data — the candidate (and, for ratio/delta, the baseline) has fewer than min_samples relevant
  samples. Never "healthy" on thin data.
* breached — the always-valid interval of the effect lies wholly past the rule's *breach line*.
* healthy — not breached, and the interval lies wholly on the safe side of the threshold.
* inconclusive — anything else: keep watching.

The breach line. No test can detect an effect sitting exactly at its null: testing "worse than 1.5×"
against a candidate whose p95 is exactly +50 % fires with probability α, forever. Yet the playbook means
"p95 +50 % must raise LATENCY_DEGRADED", "satisfaction down 20 % must roll back under ratio 0.8". So we read
the threshold the way Wald's sequential test reads its alternative: it is the harm the rule must catch, and
the rule fires once the evidence shows the candidate past the halfway point between "no change" and the
threshold — the geometric midpoint for ratios (√1.5 ≈ 1.22× for 1.5×, √0.8 ≈ 0.89× for 0.8×), the
arithmetic one for deltas (−0.075 for a 0.15 drop). Consequences, all deliberate:
  - a candidate at (or beyond) the threshold is caught, the sooner the worse it is;
  - a candidate with no change essentially never triggers (the line is far from the truth, so realised
    false alarms are far below α — see docs/benchmarks.md);
  - a candidate confidently between the line and the threshold (say 1.3× under a 1.5× rule, after a lot of
    data) is flagged too: between no change and the threshold lies an indifference zone, and we resolve it
    towards safety. BREACH_LINE_FRACTION moves the line (1.0 = the threshold itself, strict).
Absolute rules have no "no change" to measure from, so their line is the threshold itself.

Test scales: ratios of proportions and means are tested as log ratios (symmetric, and the variance of a
rare rate shrinks on that scale as it grows, which detects a doubled error rate with fewer requests);
deltas on the natural scale; quantiles with order-statistic confidence sequences (sequential.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from . import sequential
from .histogram import count_above
from .rules import LOWER_IS_WORSE, UNIT_INTERVAL_METRICS, Comparison, Metric, RuleAction
from .statistics import (
    MEAN_METRICS,
    PROPORTION_METRICS,
    QUANTILE_METRICS,
    ArmWindow,
    mean_sums,
    metric_histogram,
    metric_samples,
    metric_value,
    proportion_counts,
)

BREACH_LINE_FRACTION = 0.5
# Alerts ask a human to look, rollbacks act: the latter demand stronger evidence.
ALPHA_BY_ACTION = {RuleAction.ALERT: 0.05, RuleAction.ROLLBACK: 0.01}
DEFAULT_ALPHA = sequential.DEFAULT_ALPHA
# The normal mixture's τ as a multiple of the distance from "no change" to the threshold on the test scale
# (for absolute rules: of the threshold). 1.0 keeps the boundary near its tightest both for effects at the
# threshold and for effects a few times larger (bench/health_checker.py).
TAU_PER_THRESHOLD = 1.0
ABSOLUTE_TAU_SHARE = 0.25


class Status(StrEnum):
    BREACHED = "breached"
    HEALTHY = "healthy"
    INCONCLUSIVE = "inconclusive"
    NOT_ENOUGH_DATA = "not_enough_data"


@dataclass(frozen=True)
class Verdict:
    status: Status
    metric: Metric
    comparison: Comparison
    threshold: float
    candidate_value: float | None
    baseline_value: float | None
    effect: float | None  # the observed ratio, delta or candidate value
    interval: tuple[float, float] | None  # always-valid, on the effect's scale; may be (0, inf) on thin data
    samples: tuple[int, int]  # (candidate n, baseline n) relevant to the metric
    evidence: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def breached(self) -> bool:
        return self.status is Status.BREACHED

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (also for Postgres JSONB: non-finite numbers become None)."""
        return _json_safe({
            "status": self.status.value, "metric": self.metric.value, "comparison": self.comparison.value,
            "threshold": self.threshold, "candidate_value": self.candidate_value,
            "baseline_value": self.baseline_value, "effect": self.effect,
            "interval": list(self.interval) if self.interval else None, "samples": list(self.samples),
            "evidence": self.evidence, "summary": self.summary,
        })


def alpha_for(action: RuleAction | str) -> float:
    return ALPHA_BY_ACTION[RuleAction(action)]


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return text.replace("-", "−")


def _ratio_text(value: float) -> str:
    return f"{_fmt(value)}×"


@dataclass(frozen=True)
class _Estimate:
    effect: float | None
    interval: tuple[float, float]
    evidence: dict[str, Any]


def breach_line(metric: Metric, comparison: Comparison, threshold: float, fraction: float) -> float:
    """Where the rule acts, on the effect's scale."""
    if comparison is Comparison.RATIO:
        return threshold**fraction
    if comparison is Comparison.DELTA:
        return (-threshold if metric in LOWER_IS_WORSE else threshold) * fraction
    return threshold


def _threshold_on_effect_scale(metric: Metric, comparison: Comparison, threshold: float) -> float:
    if comparison is Comparison.DELTA and metric in LOWER_IS_WORSE:
        return -threshold
    return threshold


def mixture_tau(comparison: Comparison, threshold: float) -> float:
    if comparison is Comparison.RATIO:
        return TAU_PER_THRESHOLD * abs(math.log(threshold))
    if comparison is Comparison.DELTA:
        return TAU_PER_THRESHOLD * threshold
    return ABSOLUTE_TAU_SHARE * threshold


def _gaussian(metric: Metric, comparison: Comparison, threshold: float, line: float, alpha: float,
              candidate: ArmWindow, baseline: ArmWindow) -> _Estimate:
    """Proportions and means: a normal-mixture CS on the test scale, mapped to the effect's scale."""
    tau = mixture_tau(comparison, threshold)
    on_log_scale = comparison is Comparison.RATIO
    evidence: dict[str, Any] = {"tau": tau}
    if metric in PROPORTION_METRICS:
        x_c, n_c = proportion_counts(candidate, metric)
        x_b, n_b = proportion_counts(baseline, metric)
        if comparison is Comparison.ABSOLUTE:
            low, high = sequential.proportion_cs(x_c, n_c, alpha)
            return _Estimate(x_c / n_c, (low, high), {
                "method": "beta-binomial mixture confidence sequence (exact)",
                "events": x_c, "trials": n_c,
                "tuned_for_samples": sequential.TUNED_FOR_SAMPLES,
            })
        if on_log_scale:
            estimate, variance = sequential.proportion_log_ratio(x_c, n_c, x_b, n_b)
            evidence.update(method="normal-mixture SPRT confidence sequence on log((p_c+ε)/(p_b+ε))",
                            rate_floor=sequential.RATE_FLOOR)
        else:
            estimate, variance = sequential.proportion_difference(x_c, n_c, x_b, n_b)
            evidence["method"] = "normal-mixture SPRT confidence sequence on p_c − p_b"
        evidence.update(candidate_events=x_c, baseline_events=x_b)
    else:
        unit = metric in UNIT_INTERVAL_METRICS
        sums_c, sums_b = mean_sums(candidate, metric), mean_sums(baseline, metric)
        if comparison is Comparison.ABSOLUTE:
            mean, variance = sequential.mean_and_variance(*sums_c, unit_interval=unit)
            estimate, variance = mean, variance / sums_c[2]
            evidence["method"] = "normal-mixture confidence sequence on the mean"
        elif on_log_scale:
            estimate, variance = sequential.mean_log_ratio(*sums_c, *sums_b, unit_interval=unit)
            evidence.update(method="normal-mixture SPRT confidence sequence on log(m_c/m_b)",
                            mean_floor=sequential.MEAN_FLOOR)
        else:
            estimate, variance = sequential.mean_difference(*sums_c, *sums_b, unit_interval=unit)
            evidence["method"] = "normal-mixture SPRT confidence sequence on m_c − m_b"
    estimate, variance = float(estimate), float(variance)
    low, high = (float(bound) for bound in sequential.normal_cs(estimate, variance, tau, alpha))
    null = math.log(line) if on_log_scale else line
    evidence.update(
        standard_error=math.sqrt(variance),
        log_e_value=float(sequential.log_mixture_lr(estimate, null, variance, tau)),
        log_e_value_needed=math.log(1 / alpha),
    )
    if on_log_scale:
        return _Estimate(math.exp(estimate), (math.exp(low), math.exp(high)), evidence)
    return _Estimate(estimate, (low, high), evidence)


def _quantile(metric: Metric, comparison: Comparison, line: float, alpha: float,
              candidate: ArmWindow, baseline: ArmWindow) -> _Estimate:
    """Quantiles: order-statistic CSs per arm (α/2 each for two arms) combined at their extremes."""
    counts_c, q = metric_histogram(candidate, metric)
    counts_b, _ = metric_histogram(baseline, metric)
    value_c, value_b = metric_value(candidate, metric), metric_value(baseline, metric)
    evidence: dict[str, Any] = {
        "method": "order-statistic confidence sequences (beta-binomial mixture) on histogram buckets",
        "quantile": q, "tuned_for_samples": sequential.TUNED_FOR_SAMPLES,
    }
    if comparison is Comparison.ABSOLUTE:
        low_c, high_c = sequential.quantile_cs(counts_c, q, alpha)
        evidence["candidate_bounds_ms"] = [low_c, high_c]
        return _Estimate(value_c, (low_c, high_c), evidence)
    low_c, high_c = sequential.quantile_cs(counts_c, q, alpha / 2)
    low_b, high_b = sequential.quantile_cs(counts_b, q, alpha / 2)
    evidence.update(candidate_bounds_ms=[low_c, high_c], baseline_bounds_ms=[low_b, high_b])
    if comparison is Comparison.DELTA:
        effect = value_c - value_b if value_c is not None and value_b is not None else None
        return _Estimate(effect, (low_c - high_b, high_c - low_b), evidence)
    low = low_c / high_b if math.isfinite(high_b) and high_b > 0 else 0.0
    high = high_c / low_b if low_b > 0 else math.inf
    effect = value_c / value_b if value_c is not None and value_b else None
    if metric not in LOWER_IS_WORSE:
        # The same decision read as a share: the candidate is over the line when more than (1 − q) of its
        # requests are certainly above T = line × the baseline's upper bound.
        cut = line * high_b
        if math.isfinite(cut):
            evidence.update(cut_ms=cut, candidate_share_above_cut=count_above(counts_c, cut) / max(
                sum(counts_c), 1))
    return _Estimate(effect, (low, high), evidence)


def evaluate_rule(*, metric: Metric | str, comparison: Comparison | str, threshold: float, min_samples: int,
                  candidate: ArmWindow, baseline: ArmWindow, alpha: float = DEFAULT_ALPHA,
                  breach_line_fraction: float = BREACH_LINE_FRACTION) -> Verdict:
    """Judge one rule on the two arms' windows over the same time span (see the module docstring)."""
    metric, comparison = Metric(metric), Comparison(comparison)
    n_c, n_b = metric_samples(candidate, metric), metric_samples(baseline, metric)
    value_c, value_b = metric_value(candidate, metric), metric_value(baseline, metric)
    relative = comparison is not Comparison.ABSOLUTE
    needed = max(min_samples, 1)
    common = {"metric": metric, "comparison": comparison, "threshold": threshold,
              "candidate_value": value_c, "baseline_value": value_b, "samples": (n_c, n_b)}
    if n_c < needed or (relative and n_b < needed):
        summary = (f"{metric.value}: not enough data (candidate {n_c:,}, baseline {n_b:,} samples; "
                   f"the rule needs {needed:,} per arm)" if relative else
                   f"{metric.value}: not enough data (candidate {n_c:,} of {needed:,} samples)")
        return Verdict(status=Status.NOT_ENOUGH_DATA, effect=None, interval=None, summary=summary,
                       evidence={"min_samples": min_samples}, **common)

    line = breach_line(metric, comparison, threshold, breach_line_fraction)
    limit = _threshold_on_effect_scale(metric, comparison, threshold)
    if metric in PROPORTION_METRICS or metric in MEAN_METRICS:
        estimate = _gaussian(metric, comparison, threshold, line, alpha, candidate, baseline)
    else:
        estimate = _quantile(metric, comparison, line, alpha, candidate, baseline)
    low, high = estimate.interval
    harm_is_down = metric in LOWER_IS_WORSE
    if (high < line) if harm_is_down else (low > line):
        status = Status.BREACHED
    elif (low > limit) if harm_is_down else (high < limit):
        status = Status.HEALTHY
    else:
        status = Status.INCONCLUSIVE
    evidence = {**estimate.evidence, "alpha": alpha, "breach_line": line,
                "threshold_on_effect_scale": limit, "breach_line_fraction": breach_line_fraction,
                "min_samples": min_samples}
    return Verdict(status=status, effect=estimate.effect, interval=(low, high), evidence=evidence,
                   summary=_summary(metric, comparison, status, estimate.effect, (low, high), line, limit, alpha),
                   **common)


def _summary(metric: Metric, comparison: Comparison, status: Status, effect: float | None,
             interval: tuple[float, float], line: float, limit: float, alpha: float) -> str:
    confidence = f"always-valid {100 * (1 - alpha):g} % CI"
    low, high = interval
    if comparison is Comparison.RATIO:
        shown = f"{metric.value} {_ratio_text(effect) if effect is not None else 'n/a'} baseline " \
                f"({confidence} {_ratio_text(low)}–{_ratio_text(high)})"
        line_text, limit_text = _ratio_text(line), _ratio_text(limit)
    elif comparison is Comparison.DELTA:
        sign = "+" if effect is not None and effect >= 0 else ""
        unit = " ms" if metric in QUANTILE_METRICS else ""
        shown = (f"{metric.value} {sign}{_fmt(effect)}{unit} vs baseline "
                 f"({confidence} {_fmt(low)} to {_fmt(high)}{unit})")
        line_text, limit_text = _fmt(line), _fmt(limit)
    else:
        unit = " ms" if metric in QUANTILE_METRICS else ""
        shown = f"{metric.value} {_fmt(effect)}{unit} ({confidence} {_fmt(low)}–{_fmt(high)}{unit})"
        line_text = limit_text = _fmt(limit)
    beyond = "below" if metric in LOWER_IS_WORSE else "above"
    within = "above" if metric in LOWER_IS_WORSE else "below"
    halfway = "" if comparison is Comparison.ABSOLUTE else f", halfway to {limit_text}"
    verdicts = {
        Status.BREACHED: f"breached: wholly {beyond} {line_text}{halfway}",
        Status.HEALTHY: f"healthy: wholly {within} {limit_text}",
        Status.INCONCLUSIVE: f"inconclusive against {limit_text}",
    }
    return f"{shown}: {verdicts[status]}"
