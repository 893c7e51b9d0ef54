"""Always-valid (anytime) confidence sequences: intervals that hold at every look simultaneously.

The health tick looks at the same growing window every few seconds. A fixed-sample test peeked at 100
times raises its 5 % false-alarm rate to about a third; a confidence sequence (CS) covers the truth at all
times at once with probability ≥ 1 − α (Ville's inequality on a nonnegative martingale), so we may look as
often as we like and stop the first time it excludes "acceptable".

Two constructions, both mixture likelihood ratios:

* Means, proportions and their two-arm contrasts: the normal mixture (Robbins 1970), i.e. the mixture SPRT
  of Johari et al. "Always valid inference" (2017/2022), applied to an asymptotically normal estimate θ̂
  with variance v (the asymptotic-CS view of Waudby-Smith et al. 2021). With a N(θ0, τ²) mixture over the
  effect, Λ(θ0) = sqrt(v/(v+τ²)) · exp(τ²(θ̂−θ0)² / (2v(v+τ²))), and {θ0 : Λ(θ0) < 1/α} is
      θ̂ ± sqrt( v(v+τ²)/τ² · (2 log(1/α) + log(1 + τ²/v)) ).
  Validity is asymptotic (the CLT for θ̂): with the sample sizes a rule waits for (min_samples ≥ 200) and the
  variance floors below it holds in our simulations (tests/unit/domain/test_sequential.py, the benchmark).
  τ is "the size of effect the mixture is tuned for": the boundary is tightest when the standard error is
  about τ/3, i.e. when an effect of about τ is on the verge of detection. health.py sets τ from the rule's
  threshold (the distance from "no change" to the threshold on the test scale), so each rule is tuned for
  the effect it guards against.

  Contrasts (candidate c, baseline b):
    ratio of proportions   log((p_c+ε)/(p_b+ε)), delta method; ε = RATE_FLOOR = 0.02 % keeps a 0 % baseline
                           finite (a candidate at a clearly positive rate against 0 errors is still a large
                           ratio) without bending ratios of ordinary rates (1 % vs 2 % reads 1.98×). The
                           ratio form p_c > r·p_b is tested on this scale: log ratio > log r.
    difference of proportions p_c − p_b.
    ratio / difference of means, from sums and sums of squares (satisfaction, cost).
  Variances use Haldane-shrunk proportions (x+½)/(n+1), so zero events never mean zero variance.

* Quantiles and one-arm proportions: the exact conjugate mixture for Bernoulli data (Howard et al. 2021,
  "Time-uniform, nonparametric, nonasymptotic confidence sequences", beta-binomial mixture):
      Λ_n(p) = B(a+k, b+n−k) / B(a, b) / (p^k (1−p)^(n−k)),   a = p·c, b = (1−p)·c,
  a martingale under p for any prior, so the CS {p : Λ_n(p) < 1/α} is valid at every n, no CLT needed. The
  prior concentration c is tuned for TUNED_FOR_SAMPLES observations (it plays the role of 1/ρ² in the normal
  mixture).

  For the q-quantile ξ, N(x) = #{X_i ≤ x} is binomial, so the CS for the proportion at q turns into ranks:
  the upper bound is the k-th smallest observation for the smallest count k whose CS lies wholly above q
  (if X_(k) < ξ we would have N(ξ−) ≥ k, a miss of a valid CS — by coupling also when F(ξ−) < q, because
  the rejection region is upward closed in k). The lower bound is symmetric. On a histogram the bounds move
  outward to bucket edges, so they stay valid: the price of bucketing is at most one bucket (5 %) per side.

  Comparing quantiles of two arms: each arm gets a CS at α/2 and the ratio (or difference) is bounded by
  the extreme combinations, e.g. low = candidate lower bound / baseline upper bound. "Candidate p95 above
  k × baseline p95" is decided by low > k, which is the same as: take T = k × (baseline p95 upper bound);
  the candidate's share of requests above T is confidently over 5 %. (The baseline bound moves with time,
  but on the event that it holds, every T stays above k × the true baseline p95, so the candidate test only
  gets harder than a fixed-T test that is valid — the error is at most α/2 + α/2.)

Default α: 0.01 for rollback rules and 0.05 for alert rules (health.ALPHA_BY_ACTION). The intervals are
two-sided; a rule acts on one side only, so its false-alarm rate is at most α (in practice about α/2, and far
less than that when the truth is "no change", because rules act at a line between no change and the
threshold — see health.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import log

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaln

from . import histogram

DEFAULT_ALPHA = 0.01
TUNED_FOR_SAMPLES = 1000  # the beta-binomial prior is sharpest around a thousand observations per arm
RATE_FLOOR = 0.0002  # ε added to both proportions of a ratio: a 0 % baseline does not divide by zero
MEAN_FLOOR = 1e-9  # the same for ratios of means (a free model costs 0)
_TINY_VARIANCE = 1e-18


# --- the normal mixture ---------------------------------------------------------------------------------

def mixture_radius(variance, tau: float, alpha: float = DEFAULT_ALPHA):
    """Half-width of the two-sided normal-mixture CS around an estimate with this variance."""
    v = np.maximum(np.asarray(variance, dtype=float), _TINY_VARIANCE)
    tau2 = tau * tau
    return np.sqrt(v * (v + tau2) / tau2 * (2 * log(1 / alpha) + np.log1p(tau2 / v)))


def log_mixture_lr(estimate, null, variance, tau: float):
    """log Λ(null): the evidence against the effect being `null` (reject when ≥ log(1/α))."""
    v = np.maximum(np.asarray(variance, dtype=float), _TINY_VARIANCE)
    tau2 = tau * tau
    gap = np.asarray(estimate, dtype=float) - null
    return 0.5 * np.log(v / (v + tau2)) + tau2 * gap * gap / (2 * v * (v + tau2))


def normal_cs(estimate, variance, tau: float, alpha: float = DEFAULT_ALPHA):
    radius = mixture_radius(variance, tau, alpha)
    return estimate - radius, estimate + radius


def _shrunk(events, trials):
    """Haldane-shrunk proportion (x+½)/(n+1): never 0 or 1, so its variance is never 0."""
    return (np.asarray(events, dtype=float) + 0.5) / (np.asarray(trials, dtype=float) + 1)


def proportion_log_ratio(x_c, n_c, x_b, n_b, floor: float = RATE_FLOOR):
    """(log((p_c+ε)/(p_b+ε)), its variance) by the delta method."""
    n_c, n_b = np.asarray(n_c, dtype=float), np.asarray(n_b, dtype=float)
    p_c, p_b = np.asarray(x_c) / n_c, np.asarray(x_b) / n_b
    s_c, s_b = _shrunk(x_c, n_c), _shrunk(x_b, n_b)
    estimate = np.log(p_c + floor) - np.log(p_b + floor)
    variance = s_c * (1 - s_c) / (n_c * (s_c + floor) ** 2) + s_b * (1 - s_b) / (n_b * (s_b + floor) ** 2)
    return estimate, variance


def proportion_difference(x_c, n_c, x_b, n_b):
    """(p_c − p_b, its variance)."""
    n_c, n_b = np.asarray(n_c, dtype=float), np.asarray(n_b, dtype=float)
    s_c, s_b = _shrunk(x_c, n_c), _shrunk(x_b, n_b)
    return np.asarray(x_c) / n_c - np.asarray(x_b) / n_b, s_c * (1 - s_c) / n_c + s_b * (1 - s_b) / n_b


def mean_and_variance(total, squares, n, *, unit_interval: bool = False):
    """(mean, per-observation variance) from sums. For scores in [0, 1] the variance is floored at what a
    Haldane-shrunk Bernoulli of the same mean would have over n+1 draws, so n identical scores still
    leave some doubt."""
    n = np.asarray(n, dtype=float)
    total = np.asarray(total, dtype=float)
    mean = total / n
    variance = np.maximum((np.asarray(squares, dtype=float) - total * mean) / np.maximum(n - 1, 1), 0.0)
    if unit_interval:
        shrunk = (total + 0.5) / (n + 1)
        variance = np.maximum(variance, shrunk * (1 - shrunk) / (n + 1))
    return mean, variance


def mean_log_ratio(sum_c, sq_c, n_c, sum_b, sq_b, n_b, *, unit_interval: bool = False, floor: float = MEAN_FLOOR):
    """(log((m_c+ε)/(m_b+ε)), its variance) by the delta method."""
    m_c, v_c = mean_and_variance(sum_c, sq_c, n_c, unit_interval=unit_interval)
    m_b, v_b = mean_and_variance(sum_b, sq_b, n_b, unit_interval=unit_interval)
    estimate = np.log(m_c + floor) - np.log(m_b + floor)
    return estimate, v_c / (np.asarray(n_c) * (m_c + floor) ** 2) + v_b / (np.asarray(n_b) * (m_b + floor) ** 2)


def mean_difference(sum_c, sq_c, n_c, sum_b, sq_b, n_b, *, unit_interval: bool = False):
    """(m_c − m_b, its variance)."""
    m_c, v_c = mean_and_variance(sum_c, sq_c, n_c, unit_interval=unit_interval)
    m_b, v_b = mean_and_variance(sum_b, sq_b, n_b, unit_interval=unit_interval)
    return m_c - m_b, v_c / np.asarray(n_c) + v_b / np.asarray(n_b)


# --- the beta-binomial mixture (exact) ------------------------------------------------------------------

def prior_concentration(alpha: float, tuned_for: int = TUNED_FOR_SAMPLES) -> float:
    """c of the Beta(p·c, (1−p)·c) mixture, from the normal-mixture tuning of Waudby-Smith et al.: ρ² =
    (2 log(1/α) + log(1 + 2 log(1/α))) / n*, and the prior's spread in per-observation sd units is ρ."""
    two_log = 2 * log(1 / alpha)
    rho2 = (two_log + log(1 + two_log)) / tuned_for
    return max(1 / rho2 - 1, 1.0)


def log_beta_mixture_lr(p, k, n, concentration: float):
    """log Λ_n(p) of the beta-binomial mixture centred on p (vectorised over k and n)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    a, b = p * concentration, (1 - p) * concentration
    return betaln(a + k, b + n - k) - betaln(a, b) - k * np.log(p) - (n - k) * np.log1p(-p)


def proportion_cs(events: int, trials: int, alpha: float = DEFAULT_ALPHA,
                  tuned_for: int = TUNED_FOR_SAMPLES) -> tuple[float, float]:
    """Exact always-valid interval for one proportion."""
    if trials <= 0:
        return 0.0, 1.0
    c, level = prior_concentration(alpha, tuned_for), log(1 / alpha)
    estimate = events / trials

    def excess(p: float) -> float:
        return float(log_beta_mixture_lr(p, events, trials, c)) - level

    edge = 1e-12
    middle = min(max(estimate, 2 * edge), 1 - 2 * edge)  # Λ ≤ 1 there: the CS always contains the estimate
    low = 0.0 if events == 0 or excess(edge) < 0 else brentq(excess, edge, middle)
    high = 1.0 if events == trials or excess(1 - edge) < 0 else brentq(excess, middle, 1 - edge)
    return low, high


def _count_search(n: np.ndarray, q: float, concentration: float, level: float, upper: bool) -> np.ndarray:
    """Upper: the smallest count k > n·q at which the mixture rejects p = q (n+1 if none).
    Lower: the largest count k < n·q at which it rejects (−1 if none). Vectorised binary search; the
    evidence grows monotonically as k moves away from n·q."""
    if upper:
        lo, hi = np.floor(n * q).astype(np.int64) + 1, n + 1
    else:
        lo, hi = np.full_like(n, -1), np.ceil(n * q).astype(np.int64) - 1
    for _ in range(64):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2 if upper else (lo + hi + 1) // 2
        probe = np.clip(mid, 0, np.maximum(n, 0))
        rejects = active & (log_beta_mixture_lr(q, probe, n, concentration) >= level)
        if upper:
            hi = np.where(rejects, mid, hi)
            lo = np.where(active & ~rejects, mid + 1, lo)
        else:
            lo = np.where(rejects, mid, lo)
            hi = np.where(active & ~rejects, mid - 1, hi)
    return lo


def quantile_cs(counts: Sequence[int] | np.ndarray, q: float, alpha: float = DEFAULT_ALPHA,
                tuned_for: int = TUNED_FOR_SAMPLES):
    """Always-valid (low, high) bounds on the q-quantile from histogram counts.

    `counts` is one histogram or a 2-D array of them (one per row, vectorised); returns floats or arrays.
    low may be 0 and high may be inf when there is too little data to say more.
    """
    counts = np.asarray(counts, dtype=np.int64)
    single = counts.ndim == 1
    counts = np.atleast_2d(counts)
    cumulative = np.cumsum(counts, axis=1)
    n = cumulative[:, -1]
    c, level = prior_concentration(alpha, tuned_for), log(1 / alpha)
    upper_rank = _count_search(n, q, c, level, upper=True)  # X_(upper_rank) ≥ ξ
    lower_rank = _count_search(n, q, c, level, upper=False) + 1  # X_(lower_rank) ≤ ξ
    # The bucket holding the r-th smallest observation is the first whose cumulative count reaches r.
    upper_bucket = np.minimum((cumulative < upper_rank[:, None]).sum(axis=1), histogram.BUCKET_COUNT - 1)
    lower_bucket = np.minimum((cumulative < lower_rank[:, None]).sum(axis=1), histogram.BUCKET_COUNT - 1)
    high = np.where(upper_rank > n, np.inf, histogram.UPPER_EDGES[upper_bucket])
    low = np.where(lower_rank < 1, 0.0, histogram.LOWER_EDGES[lower_bucket])
    if single:
        return float(low[0]), float(high[0])
    return low, high


def proportion_count_bounds(n: int, q: float, alpha: float = DEFAULT_ALPHA,
                            tuned_for: int = TUNED_FOR_SAMPLES) -> tuple[int, int]:
    """For n Bernoulli(q) draws: (largest count that rejects p = q from below, smallest that rejects from
    above); −1 and n+1 when none does. Exposed for tests and for reading the quantile bounds as ranks."""
    c, level = prior_concentration(alpha, tuned_for), log(1 / alpha)
    n_arr = np.array([n], dtype=np.int64)
    return (int(_count_search(n_arr, q, c, level, upper=False)[0]),
            int(_count_search(n_arr, q, c, level, upper=True)[0]))


def fixed_sample_z(estimate, variance):
    """The plain z statistic, for comparison only: valid for one look, not for many."""
    return np.asarray(estimate) / np.sqrt(np.maximum(np.asarray(variance, dtype=float), _TINY_VARIANCE))


__all__ = [
    "DEFAULT_ALPHA", "RATE_FLOOR", "TUNED_FOR_SAMPLES", "fixed_sample_z", "log_beta_mixture_lr", "log_mixture_lr",
    "mean_and_variance", "mean_difference", "mean_log_ratio", "mixture_radius", "normal_cs",
    "prior_concentration", "proportion_count_bounds", "proportion_cs", "proportion_difference",
    "proportion_log_ratio", "quantile_cs",
]
