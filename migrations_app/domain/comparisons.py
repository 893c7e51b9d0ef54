"""Statistics over paired model answers: shadow comparisons and evaluation runs. Pure (numpy/scipy only).

The same prompt sent to both models makes *paired* data: the two answers, latencies and costs of one
prompt are correlated (a long prompt is slow and dear for both), so differences are estimated per prompt
and their spread — not the spread of each arm — sets the interval width.

Disagreement and the noise floor
--------------------------------
A comparison *disagrees* when its agreement score (a comparator, token F1 by default) falls below the plan's
threshold. Two answers from the *same* model disagree too when it samples (temperature > 0): that rate, the
**noise floor** f, is measured by re-asking the baseline on a fraction of the shadow samples. With d the
candidate-vs-baseline disagreement rate, the **share of prompts on which the candidate disagrees beyond noise**
is

    e = (d − f) / (1 − f)

(chance-corrected as in Cohen's κ: if the candidate behaves differently on a share e of prompts and like the
baseline — noise included — on the rest, then d = e + (1 − e)·f). e is 0 for a candidate that behaves like the
baseline however noisy the baseline is, and e equals the drifting share for one that drifts.

d is estimated over all n comparisons; f over the m ≤ n that were re-asked; the m re-asked ones are pairs
(x_i: candidate disagrees, y_i: re-ask disagrees), so Cov(d̂, f̂) = Cov(x, y)/n and
    Var(d̂ − f̂) = Var(x)/n + Var(y)/m − 2·Cov(x, y)/n,
and the delta method carries this to e. Proportions' variances are Haldane-shrunk ((k+½)/(n+1)), so a
deterministic baseline (f = 0) does not claim zero doubt.

Intervals are always-valid (normal-mixture confidence sequences, sequential.py) because a scheduler looks at
the same growing set of comparisons again and again; τ is the effect the mixture is tuned for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

import numpy as np

from .sequential import normal_cs

DEFAULT_ALPHA = 0.05
DEFAULT_TAU = 0.05  # tuned for a few points of excess disagreement: the size a plan's threshold guards


def _shrunk(k: float, n: float) -> float:
    return (k + 0.5) / (n + 1)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


NONE = Estimate(None)


def _cs(value: float, variance: float, tau: float, alpha: float, n: int,
        bounds: tuple[float, float] | None = None) -> Estimate:
    low, high = normal_cs(value, variance, tau, alpha)
    low, high = float(low), float(high)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Estimate(float(value), low, high, n)


def proportion(events: int, trials: int, *, tau: float = DEFAULT_TAU, alpha: float = DEFAULT_ALPHA) -> Estimate:
    if trials <= 0:
        return NONE
    s = _shrunk(events, trials)
    return _cs(events / trials, s * (1 - s) / trials, tau, alpha, trials, (0.0, 1.0))


def paired_difference(candidate: Sequence[float], baseline: Sequence[float], *, tau: float,
                      alpha: float = DEFAULT_ALPHA) -> Estimate:
    """Mean of candidate_i − baseline_i over pairs where both are known (None/NaN pairs dropped)."""
    pairs = np.array([(c, b) for c, b in zip(candidate, baseline, strict=True)
                      if c is not None and b is not None and isfinite(c) and isfinite(b)], dtype=float)
    if len(pairs) < 2:
        return Estimate(float(pairs[0, 0] - pairs[0, 1]) if len(pairs) else None, n=len(pairs))
    diff = pairs[:, 0] - pairs[:, 1]
    return _cs(float(diff.mean()), float(diff.var(ddof=1)) / len(diff), tau, alpha, len(diff))


def mean(values: Sequence[float], *, tau: float, alpha: float = DEFAULT_ALPHA,
         bounds: tuple[float, float] | None = None) -> Estimate:
    data = np.array([v for v in values if v is not None and isfinite(v)], dtype=float)
    if len(data) == 0:
        return NONE
    if len(data) == 1:
        return Estimate(float(data[0]), n=1)
    variance = float(data.var(ddof=1))
    if bounds == (0.0, 1.0):  # scores: n identical values still leave some doubt
        s = _shrunk(float(data.sum()), len(data))
        variance = max(variance, s * (1 - s))
    return _cs(float(data.mean()), variance / len(data), tau, alpha, len(data), bounds)


@dataclass(frozen=True)
class Pair:
    """One shadow comparison as the statistics see it."""

    disagree: bool
    score: float
    noise_disagree: bool | None = None  # None: the baseline was not re-asked for this sample
    segment: str = ""
    latency_candidate_ms: float | None = None
    latency_baseline_ms: float | None = None
    cost_candidate: float | None = None
    cost_baseline: float | None = None


@dataclass(frozen=True)
class DisagreementSummary:
    comparisons: int
    noise_samples: int
    disagreement: Estimate
    noise_floor: Estimate
    above_noise: Estimate  # e = (d − f)/(1 − f), the share of prompts beyond noise
    excess: Estimate  # d − f, in points of disagreement rate

    def as_dict(self) -> dict[str, Any]:
        return {"comparisons": self.comparisons, "noise_samples": self.noise_samples,
                "disagreement": self.disagreement.as_dict(), "noise_floor": self.noise_floor.as_dict(),
                "disagreement_above_noise": self.above_noise.as_dict(), "excess": self.excess.as_dict()}


def disagreement_above_noise(pairs: Sequence[Pair], *, tau: float = DEFAULT_TAU,
                             alpha: float = DEFAULT_ALPHA) -> DisagreementSummary:
    n = len(pairs)
    x = np.array([p.disagree for p in pairs], dtype=float)
    noisy = [p for p in pairs if p.noise_disagree is not None]
    m = len(noisy)
    disagreement = proportion(int(x.sum()), n, tau=tau, alpha=alpha)
    noise = proportion(sum(bool(p.noise_disagree) for p in noisy), m, tau=tau, alpha=alpha)
    if n == 0 or m == 0:
        return DisagreementSummary(n, m, disagreement, noise, NONE, NONE)
    d, f = float(x.mean()), noise.value or 0.0
    xs = np.array([p.disagree for p in noisy], dtype=float)
    ys = np.array([bool(p.noise_disagree) for p in noisy], dtype=float)
    sd, sf = _shrunk(x.sum(), n), _shrunk(ys.sum(), m)
    var_d, var_f = sd * (1 - sd) / n, sf * (1 - sf) / m
    cov_xy = float(np.mean((xs - xs.mean()) * (ys - ys.mean()))) * m / max(m - 1, 1) if m > 1 else 0.0
    cov_df = cov_xy / n
    excess = _cs(d - f, max(var_d + var_f - 2 * cov_df, 1e-12), tau, alpha, n, (-1.0, 1.0))
    if f >= 1.0:
        return DisagreementSummary(n, m, disagreement, noise, NONE, excess)
    e = (d - f) / (1 - f)
    g_d, g_f = 1 / (1 - f), (d - 1) / (1 - f) ** 2
    var_e = g_d * g_d * var_d + g_f * g_f * var_f + 2 * g_d * g_f * cov_df
    above = _cs(e, max(var_e, 1e-12), tau, alpha, n, (-1.0, 1.0))
    return DisagreementSummary(n, m, disagreement, noise, above, excess)


@dataclass(frozen=True)
class PairedReport:
    overall: DisagreementSummary
    score: Estimate  # mean agreement score
    latency_difference_ms: Estimate  # candidate − baseline, per prompt
    latency_ratio: float | None  # mean candidate latency / mean baseline latency
    cost_difference: Estimate  # dollars per request, candidate − baseline
    cost_ratio: float | None
    per_segment: Mapping[str, PairedReport] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.overall.as_dict(), "score": self.score.as_dict(),
                "latency_difference_ms": self.latency_difference_ms.as_dict(), "latency_ratio": self.latency_ratio,
                "cost_difference": self.cost_difference.as_dict(), "cost_ratio": self.cost_ratio,
                "per_segment": {name: report.as_dict() for name, report in self.per_segment.items()}}


def _ratio_of_means(candidate: Iterable[float | None], baseline: Iterable[float | None]) -> float | None:
    pairs = [(c, b) for c, b in zip(candidate, baseline, strict=True) if c is not None and b is not None]
    total_b = sum(b for _, b in pairs)
    return sum(c for c, _ in pairs) / total_b if pairs and total_b > 0 else None


def paired_report(pairs: Sequence[Pair], *, tau: float = DEFAULT_TAU, alpha: float = DEFAULT_ALPHA,
                  by_segment: bool = True) -> PairedReport:
    lat_c = [p.latency_candidate_ms for p in pairs]
    lat_b = [p.latency_baseline_ms for p in pairs]
    cost_c = [p.cost_candidate for p in pairs]
    cost_b = [p.cost_baseline for p in pairs]
    segments: dict[str, list[Pair]] = {}
    if by_segment:
        for pair in pairs:
            segments.setdefault(pair.segment or "", []).append(pair)
    mean_latency = np.nanmean([v for v in lat_b if v is not None]) if any(v is not None for v in lat_b) else 0
    mean_cost = np.nanmean([v for v in cost_b if v is not None]) if any(v is not None for v in cost_b) else 0
    return PairedReport(
        overall=disagreement_above_noise(pairs, tau=tau, alpha=alpha),
        score=mean([p.score for p in pairs], tau=tau, alpha=alpha, bounds=(0.0, 1.0)),
        # τ scaled to each quantity: a tenth of the baseline's mean is the effect worth noticing.
        latency_difference_ms=paired_difference(lat_c, lat_b, tau=max(float(mean_latency) * 0.1, 1.0), alpha=alpha),
        latency_ratio=_ratio_of_means(lat_c, lat_b),
        cost_difference=paired_difference(cost_c, cost_b, tau=max(float(mean_cost) * 0.1, 1e-7), alpha=alpha),
        cost_ratio=_ratio_of_means(cost_c, cost_b),
        per_segment={name: paired_report(group, tau=tau, alpha=alpha, by_segment=False)
                     for name, group in sorted(segments.items())} if len(segments) > 1 or "" not in segments
        else {},
    )


# --- evaluation runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criteria:
    """The plan's success criteria (the playbook's proof-of-concept defaults)."""

    min_accuracy: float = 0.95
    max_p95_ms: float = 2000.0
    max_cost_per_request: float = 0.01


@dataclass(frozen=True)
class Attempt:
    """One call of one arm on one case in one repetition."""

    case: int
    repetition: int
    ok: bool
    latency_ms: float
    cost: float
    segment: str = ""
    accuracy: float | None = None  # against the expected answer, when the case has one
    format_ok: bool | None = None  # against the case's schema / requested format, when it has one
    agreement: float | None = None  # candidate only: against the baseline's answer of the same repetition


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def _rate(flags: Sequence[bool | float]) -> float | None:
    return float(np.mean(np.asarray(flags, dtype=float))) if len(flags) else None


def arm_metrics(attempts: Sequence[Attempt]) -> dict[str, Any]:
    ok = [a for a in attempts if a.ok]
    accuracy = [a.accuracy for a in attempts if a.accuracy is not None]
    formats = [a.format_ok for a in attempts if a.format_ok is not None]
    agreement = [a.agreement for a in attempts if a.agreement is not None]
    latencies = [a.latency_ms for a in ok]
    return {
        "calls": len(attempts),
        "accuracy": _rate(accuracy),
        "accuracy_checked": len(accuracy),
        "agreement": _rate(agreement),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "cost_per_request": _rate([a.cost for a in attempts]),
        "cost_total": float(sum(a.cost for a in attempts)),
        "failure_rate": _rate([not a.ok for a in attempts]),
        "format_compliance": _rate(formats),
        "format_checked": len(formats),
    }


_VARIED = ("accuracy", "agreement", "latency_p95_ms", "cost_per_request", "failure_rate", "format_compliance")


def run_to_run(attempts: Sequence[Attempt]) -> dict[str, Any]:
    """Each metric per repetition, with the spread across repetitions (sample standard deviation): how much
    of a difference between two runs is the models' own variability."""
    repetitions = sorted({a.repetition for a in attempts})
    per_rep = [arm_metrics([a for a in attempts if a.repetition == r]) for r in repetitions]
    out: dict[str, Any] = {}
    for name in _VARIED:
        values = [m[name] for m in per_rep if m[name] is not None]
        out[name] = {"per_repetition": values,
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}
    return out


def evaluation_report(baseline: Sequence[Attempt], candidate: Sequence[Attempt]) -> dict[str, Any]:
    segments = sorted({a.segment for a in (*baseline, *candidate)})
    return {
        "arms": {
            arm: {**arm_metrics(attempts), "variance": run_to_run(attempts)}
            for arm, attempts in (("baseline", baseline), ("candidate", candidate))
        },
        "per_segment": {
            segment: {arm: arm_metrics([a for a in attempts if a.segment == segment])
                      for arm, attempts in (("baseline", baseline), ("candidate", candidate))}
            for segment in segments
        } if segments != [""] else {},
    }


def recommend(candidate: Mapping[str, Any], criteria: Criteria) -> dict[str, Any]:
    """Pass when every criterion that could be measured holds; accuracy falls back to agreement with the
    baseline when no case has an expected answer (said so in the checks)."""
    checks = []
    accuracy, basis = candidate.get("accuracy"), "expected answers"
    if accuracy is None and candidate.get("agreement") is not None:
        accuracy, basis = candidate["agreement"], "agreement with the baseline (no expected answers)"
    checks.append(_check("accuracy", accuracy, criteria.min_accuracy, at_least=True, basis=basis))
    checks.append(_check("latency_p95_ms", candidate.get("latency_p95_ms"), criteria.max_p95_ms, at_least=False))
    checks.append(_check("cost_per_request", candidate.get("cost_per_request"), criteria.max_cost_per_request,
                         at_least=False))
    failed = [c for c in checks if c["passed"] is False]
    measured = [c for c in checks if c["passed"] is not None]
    passed = bool(measured) and not failed
    summary = ("meets the success criteria" if passed else
               "fails: " + "; ".join(c["detail"] for c in failed) if failed else "nothing could be measured")
    return {"passed": passed, "summary": summary, "checks": checks}


def _check(name: str, value: float | None, limit: float, *, at_least: bool, basis: str = "") -> dict[str, Any]:
    if value is None:
        return {"metric": name, "value": None, "limit": limit, "passed": None, "detail": f"{name}: not measured"}
    passed = value >= limit if at_least else value <= limit
    sign = "≥" if at_least else "≤"
    detail = f"{name} {value:.4g} (needs {sign} {limit:g})" + (f", from {basis}" if basis else "")
    return {"metric": name, "value": value, "limit": limit, "passed": passed, "detail": detail}


def regression(previous: Mapping[str, Any], current: Mapping[str, Any], *, max_accuracy_drop: float = 0.02,
               max_p95_increase: float = 0.2, max_cost_increase: float = 0.2) -> list[str]:
    """What got worse from one scheduled run's candidate metrics to the next, beyond the allowances."""
    findings = []
    for name in ("accuracy", "agreement", "format_compliance"):
        before, after = previous.get(name), current.get(name)
        if before is not None and after is not None and before - after > max_accuracy_drop:
            findings.append(f"{name} fell from {before:.3f} to {after:.3f}")
    for name, allowance in (("latency_p95_ms", max_p95_increase), ("cost_per_request", max_cost_increase)):
        before, after = previous.get(name), current.get(name)
        if before and after is not None and after > before * (1 + allowance):
            findings.append(f"{name} rose from {before:.4g} to {after:.4g}")
    before, after = previous.get("failure_rate"), current.get("failure_rate")
    if before is not None and after is not None and after - before > max_accuracy_drop:
        findings.append(f"failure_rate rose from {before:.3f} to {after:.3f}")
    return findings

