"""False alarms and time to detect of the health checker, beside the naive playbook rule.

Simulates a 5 % rollout step (the baseline serves 19 requests for each candidate request) and checks the
playbook's DEFAULT_RULES after every 100 candidate requests, up to 50,000 candidate requests per stream:

1. A/A: both arms identical. The share of streams on which ANY default rule ever fires (goal ≤ 1 %).
2. The candidate's error rate is twice the baseline's 1 %, everything else identical: how many candidate
   requests until any default rule fires (goal: median ≤ 2,000).

Each rule is judged two ways on the same simulated data: by migrations_app.domain.health (always-valid
confidence sequences, α by the rule's action) and by the NAIVE rule — once min_samples is reached, the
observed value compared with the threshold (rules.breaches) at every check. `sustained_seconds` is left out
of both (there is no wall clock here); it would slow both down equally.

The streams are vectorised with numpy (one array row per stream). A spot check replays a few streams
through health.evaluate_rule and asserts it agrees with the vectorised decisions.

    .venv/bin/python bench/health_checker.py [--streams 1000] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migrations_app.domain import histogram, playbook, sequential  # noqa: E402
from migrations_app.domain.health import (  # noqa: E402
    alpha_for,
    breach_line,
    evaluate_rule,
    mixture_tau,
)
from migrations_app.domain.rules import Comparison, Metric, breaches  # noqa: E402
from migrations_app.domain.statistics import ArmWindow  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- health-checker:start -->", "<!-- health-checker:end -->"
HEADING = "## Health checker: false alarms and time to detect"

BATCH = 100  # candidate requests between checks
CANDIDATE_REQUESTS = 50_000
BASELINE_PER_CANDIDATE = 19  # a 5 % split


@dataclass(frozen=True)
class Traffic:
    error_rate: float = 0.01
    latency_median_ms: float = 800.0
    latency_sigma: float = 0.5  # lognormal: p95 ≈ 1,820 ms
    cost_median: float = 0.002  # dollars per request, lognormal
    cost_sigma: float = 0.6
    feedback_rate: float = 0.1  # share of requests with a thumbs up/down
    satisfaction: float = 0.8  # share of thumbs up


class Arm:
    """Cumulative sufficient statistics of one arm, one row per stream."""

    def __init__(self, streams: int, traffic: Traffic, per_check: int, exact_costs: bool):
        self.traffic, self.per_check, self.exact_costs = traffic, per_check, exact_costs
        self.requests = 0
        self.errors = np.zeros(streams, np.int64)
        self.latency = np.zeros((streams, histogram.BUCKET_COUNT), np.int64)
        self.cost_sum = np.zeros(streams)
        self.cost_sq_sum = np.zeros(streams)
        self.feedback = np.zeros(streams, np.int64)
        self.satisfied = np.zeros(streams, np.int64)
        edges = np.log(np.asarray(histogram.EDGES) / traffic.latency_median_ms) / traffic.latency_sigma
        cdf = np.concatenate(([0.0], norm.cdf(edges), [1.0]))
        self.bucket_probabilities = np.diff(cdf)
        self.support = np.flatnonzero(self.bucket_probabilities > 1e-13)
        mu, s2 = np.log(traffic.cost_median), traffic.cost_sigma**2
        moment = [np.exp(k * mu + k * k * s2 / 2) for k in range(5)]  # E[X^k] of the lognormal
        self.cost_mean = np.array([moment[1], moment[2]])
        self.cost_cov = np.array([[moment[2] - moment[1] ** 2, moment[3] - moment[1] * moment[2]],
                                  [moment[3] - moment[1] * moment[2], moment[4] - moment[2] ** 2]])

    def grow(self, rng: np.random.Generator) -> None:
        n, t, streams = self.per_check, self.traffic, len(self.errors)
        self.requests += n
        self.errors += rng.binomial(n, t.error_rate, streams)
        probabilities = self.bucket_probabilities[self.support]
        self.latency[:, self.support] += rng.multinomial(n, probabilities / probabilities.sum(), size=streams)
        if self.exact_costs:
            costs = rng.lognormal(np.log(t.cost_median), t.cost_sigma, (streams, n))
            self.cost_sum += costs.sum(axis=1)
            self.cost_sq_sum += (costs * costs).sum(axis=1)
        else:  # sums of many lognormals: their joint normal limit
            sums = rng.multivariate_normal(n * self.cost_mean, n * self.cost_cov, size=streams)
            self.cost_sum += sums[:, 0]
            self.cost_sq_sum += sums[:, 1]
        feedback = rng.binomial(n, t.feedback_rate, streams)
        self.feedback += feedback
        self.satisfied += rng.binomial(feedback, t.satisfaction)

    def window(self, row: int) -> ArmWindow:
        return ArmWindow(
            requests=self.requests, errors=int(self.errors[row]), successes=self.requests - int(self.errors[row]),
            latency_hist=tuple(int(c) for c in self.latency[row]), ttft_hist=histogram.empty(),
            cost_sum=float(self.cost_sum[row]), cost_sq_sum=float(self.cost_sq_sum[row]),
            feedback_count=int(self.feedback[row]), satisfaction_sum=float(self.satisfied[row]),
            satisfaction_sq_sum=float(self.satisfied[row]),
        )


def vector_quantile(counts: np.ndarray, q: float) -> np.ndarray:
    """histogram.quantile, one row per stream."""
    cumulative = np.cumsum(counts, axis=1)
    n = cumulative[:, -1]
    rank = q * n
    index = np.minimum((cumulative < rank[:, None]).sum(axis=1), histogram.BUCKET_COUNT - 1)
    rows = np.arange(len(counts))
    before = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0)
    fraction = np.clip((rank - before) / np.maximum(counts[rows, index], 1), 0, 1)
    low, high = histogram.LOWER_EDGES[index], histogram.UPPER_EDGES[index]
    finite = (index > 0) & (index < histogram.BUCKET_COUNT - 1)
    inside = low * (np.where(finite, high, 2.0) / np.where(finite, low, 1.0)) ** fraction
    return np.where(finite, inside, np.where(index == 0, fraction, low))


def samples(metric: Metric, arm: Arm) -> np.ndarray:
    if metric is Metric.SATISFACTION:
        return arm.feedback
    if metric is Metric.LATENCY_P95:
        return arm.latency.sum(axis=1)
    return np.full(len(arm.errors), arm.requests)


def decide(rule: playbook.RuleDefault, cand: Arm, base: Arm) -> tuple[np.ndarray, np.ndarray]:
    """(ours breached, naive breached), one boolean per stream."""
    metric, comparison, threshold = rule.metric, rule.comparison, rule.threshold
    alpha = alpha_for(rule.action)
    line = breach_line(metric, comparison, threshold, 0.5)
    enough = (samples(metric, cand) >= rule.min_samples) & (samples(metric, base) >= rule.min_samples)
    if metric is Metric.ERROR_RATE:
        estimate, variance = sequential.proportion_log_ratio(cand.errors, cand.requests, base.errors, base.requests)
        value_c, value_b = cand.errors / cand.requests, base.errors / base.requests
    elif metric is Metric.COST_PER_REQUEST:
        estimate, variance = sequential.mean_log_ratio(cand.cost_sum, cand.cost_sq_sum, cand.requests,
                                                       base.cost_sum, base.cost_sq_sum, base.requests)
        value_c, value_b = cand.cost_sum / cand.requests, base.cost_sum / base.requests
    elif metric is Metric.SATISFACTION:
        sums = (cand.satisfied, cand.satisfied, cand.feedback, base.satisfied, base.satisfied, base.feedback)
        if comparison is Comparison.RATIO:
            estimate, variance = sequential.mean_log_ratio(*sums, unit_interval=True)
        else:
            estimate, variance = sequential.mean_difference(*sums, unit_interval=True)
        value_c, value_b = cand.satisfied / cand.feedback, base.satisfied / base.feedback
    else:  # latency p95, ratio
        low_c, _ = sequential.quantile_cs(cand.latency, 0.95, alpha / 2)
        _, high_b = sequential.quantile_cs(base.latency, 0.95, alpha / 2)
        ours = enough & (low_c > line * high_b)
        value_c, value_b = vector_quantile(cand.latency, 0.95), vector_quantile(base.latency, 0.95)
        return ours, enough & (value_c > threshold * value_b)
    low, high = sequential.normal_cs(estimate, variance, mixture_tau(comparison, threshold), alpha)
    if comparison is Comparison.RATIO:
        low, high = np.exp(low), np.exp(high)
    lower_is_worse = metric is Metric.SATISFACTION
    ours = enough & ((high < line) if lower_is_worse else (low > line))
    naive = np.array([breaches(metric, comparison, threshold, candidate=c, baseline=b) if ok else False
                      for c, b, ok in zip(value_c, value_b, enough, strict=True)])
    return ours, naive


def run(streams: int, candidate: Traffic, baseline: Traffic, seed: int, spot_check: bool):
    """First check (in candidate requests) at which each rule fired, per stream; 0 where it never did."""
    rng = np.random.default_rng(seed)
    cand = Arm(streams, candidate, BATCH, exact_costs=True)
    base = Arm(streams, baseline, BATCH * BASELINE_PER_CANDIDATE, exact_costs=False)
    rules = playbook.DEFAULT_RULES
    first_ours = np.zeros((len(rules), streams), np.int64)
    first_naive = np.zeros((len(rules), streams), np.int64)
    checks = CANDIDATE_REQUESTS // BATCH
    spot_at = {2, 5, 20, checks // 2, checks - 1}
    with np.errstate(divide="ignore", invalid="ignore"):
        for check in range(checks):
            cand.grow(rng)
            base.grow(rng)
            for i, rule in enumerate(rules):
                ours, naive = decide(rule, cand, base)
                first_ours[i] = np.where((first_ours[i] == 0) & ours, cand.requests, first_ours[i])
                first_naive[i] = np.where((first_naive[i] == 0) & naive, cand.requests, first_naive[i])
                if spot_check and check in spot_at:
                    for row in range(min(streams, 8)):
                        verdict = evaluate_rule(metric=rule.metric, comparison=rule.comparison,
                                                threshold=rule.threshold, min_samples=rule.min_samples,
                                                candidate=cand.window(row), baseline=base.window(row),
                                                alpha=alpha_for(rule.action))
                        assert verdict.breached == bool(ours[row]), (rule, row, verdict.summary)
    return first_ours, first_naive


def any_rule(first: np.ndarray) -> np.ndarray:
    """Requests until the first of any rule fired (np.inf when none did)."""
    fired = np.where(first > 0, first, np.iinfo(np.int64).max)
    earliest = fired.min(axis=0).astype(float)
    earliest[earliest == np.iinfo(np.int64).max] = np.inf
    return earliest


def rule_name(rule: playbook.RuleDefault) -> str:
    return f"{rule.metric.value} {rule.comparison.value} {rule.threshold:g} ({rule.action.value})"


def detection_figures(earliest: np.ndarray) -> tuple[float, float, float]:
    detected = np.isfinite(earliest)
    median = float(np.median(earliest)) if detected.mean() >= 0.5 else np.inf
    p90 = float(np.quantile(earliest, 0.9)) if detected.mean() >= 0.9 else np.inf
    return detected.mean(), median, p90


def fmt_requests(value: float) -> str:
    return "never (within 50,000)" if not np.isfinite(value) else f"{value:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    started = time.perf_counter()
    normal = Traffic()
    aa_ours, aa_naive = run(args.streams, normal, normal, args.seed, spot_check=True)
    worse = Traffic(error_rate=2 * normal.error_rate)
    ab_ours, ab_naive = run(args.streams, worse, normal, args.seed + 1, spot_check=True)
    elapsed = time.perf_counter() - started

    rules = playbook.DEFAULT_RULES
    lines = [
        START, HEADING, "",
        f"`bench/health_checker.py` — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {elapsed:.0f} s. {args.streams:,} simulated streams per scenario, seed "
        f"{args.seed}. A 5 % step: the baseline gets {BASELINE_PER_CANDIDATE}× the candidate's traffic. "
        f"Rules checked after every {BATCH} candidate requests, up to {CANDIDATE_REQUESTS:,} "
        f"({CANDIDATE_REQUESTS // BATCH} looks). Traffic: error rate {normal.error_rate:.0%}; latency lognormal, "
        f"median {normal.latency_median_ms:g} ms, σ {normal.latency_sigma} (p95 ≈ 1.8 s); cost lognormal, "
        f"median ${normal.cost_median}, σ {normal.cost_sigma}; {normal.feedback_rate:.0%} of requests get a "
        f"thumbs up/down, {normal.satisfaction:.0%} up. Rules: `playbook.DEFAULT_RULES`, min_samples 200; "
        "ours use α = 0.05 for alerts and 0.01 for rollbacks; naive = observed value against the threshold "
        "(`rules.breaches`) at every check once min_samples is reached. `sustained_seconds` is left out of both.",
        "",
        "| rule | A/A streams fired — ours | A/A — naive | error ×2: fired — ours | median requests to fire — ours "
        "| error ×2: fired — naive | median — naive |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, rule in enumerate(rules):
        share_o, med_o, _ = detection_figures(np.where(ab_ours[i] > 0, ab_ours[i], np.inf))
        share_n, med_n, _ = detection_figures(np.where(ab_naive[i] > 0, ab_naive[i], np.inf))
        lines.append(f"| {rule_name(rule)} | {(aa_ours[i] > 0).mean():.1%} | {(aa_naive[i] > 0).mean():.1%} "
                     f"| {share_o:.1%} | {fmt_requests(med_o)} | {share_n:.1%} | {fmt_requests(med_n)} |")
    aa_any_ours, aa_any_naive = np.isfinite(any_rule(aa_ours)).mean(), np.isfinite(any_rule(aa_naive)).mean()
    share_o, med_o, p90_o = detection_figures(any_rule(ab_ours))
    share_n, med_n, p90_n = detection_figures(any_rule(ab_naive))
    lines += [
        f"| **any default rule** | **{aa_any_ours:.1%}** | **{aa_any_naive:.1%}** | **{share_o:.1%}** "
        f"| **{fmt_requests(med_o)}** | **{share_n:.1%}** | **{fmt_requests(med_n)}** |",
        "",
        f"- A/A false alarms (any default rule, 500 looks): **ours {aa_any_ours:.1%}** (goal ≤ 1 %), naive "
        f"{aa_any_naive:.1%}.",
        f"- Error rate doubled (1 % → 2 %), candidate requests until any default rule fires: **ours median "
        f"{fmt_requests(med_o)}, p90 {fmt_requests(p90_o)}** (goal: median ≤ 2,000; Wald's SPRT with a known "
        f"baseline needs about 800); naive median {fmt_requests(med_n)}, p90 {fmt_requests(p90_n)} — but the "
        "naive rule fires as early on identical arms, so its speed is noise.",
        END,
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_record:
        record(section)
        print(f"recorded in {DOC.relative_to(ROOT)}")
    return 0


def record(section: str) -> None:
    """Replace only our section of docs/benchmarks.md (other scripts write theirs)."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
