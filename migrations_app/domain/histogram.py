"""A fixed log-spaced histogram for durations in milliseconds (latency, time to first token).

Layout: bucket 0 is the underflow [0, 1 ms); buckets 1..273 are [1.05**(i-1), 1.05**i) ms, so each covers
5 % of its lower edge and together they reach 1.05**273 ≈ 608,000 ms (just over 10 minutes); the last
bucket is the overflow [≈608 s, ∞). That makes BUCKET_COUNT = 275. A quantile read from the counts is
therefore exact to within one bucket, i.e. about 5 % relative (log-linear interpolation inside the bucket
usually does better).

The layout is part of the stored data: per-minute rollups keep these counts as a JSON list, index by index.
Changing GROWTH, LOWEST_MS or the number of buckets silently corrupts every stored rollup, so it requires a
data migration that re-buckets them (or a new field).
"""

from bisect import bisect_right
from collections.abc import Sequence
from math import ceil, log

import numpy as np

GROWTH = 1.05
LOWEST_MS = 1.0
HIGHEST_MS = 600_000.0  # 10 minutes; anything above lands in the overflow bucket
FINITE_BUCKETS = ceil(log(HIGHEST_MS / LOWEST_MS) / log(GROWTH))  # 273
BUCKET_COUNT = FINITE_BUCKETS + 2  # plus underflow and overflow: 275

# EDGES[i] is the upper edge of bucket i and the lower edge of bucket i + 1.
EDGES: tuple[float, ...] = tuple(LOWEST_MS * GROWTH**i for i in range(FINITE_BUCKETS + 1))
LOWER_EDGES = np.array((0.0, *EDGES))  # by bucket index
UPPER_EDGES = np.array((*EDGES, np.inf))


def bucket_index(ms: float) -> int:
    """The bucket holding a duration: bucket i holds EDGES[i-1] <= ms < EDGES[i] (negatives go to underflow)."""
    return bisect_right(EDGES, ms)


def bucket_indices(ms: np.ndarray) -> np.ndarray:
    """bucket_index over an array (same rule), for simulations and tests."""
    return np.searchsorted(np.asarray(EDGES), ms, side="right")


def counts_of(values: Sequence[float] | np.ndarray) -> tuple[int, ...]:
    """The histogram of some durations."""
    return tuple(int(c) for c in np.bincount(bucket_indices(np.asarray(values, dtype=float)),
                                             minlength=BUCKET_COUNT))


def empty() -> tuple[int, ...]:
    return (0,) * BUCKET_COUNT


def merge(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Elementwise sum. An empty sequence stands for an empty histogram (handy for fresh rows)."""
    if not a:
        return tuple(b)
    if not b:
        return tuple(a)
    if len(a) != len(b):
        raise ValueError(f"histograms of different layouts: {len(a)} and {len(b)} buckets")
    return tuple(x + y for x, y in zip(a, b, strict=True))


def total(counts: Sequence[int]) -> int:
    return int(sum(counts))


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 <= q <= 1) of the recorded durations, or None when there are none.

    Finds the bucket holding the observation of rank q·n and interpolates log-linearly inside it (linearly
    in the underflow bucket). In the overflow bucket the true value is unknown; its lower edge is returned.
    """
    if not 0 <= q <= 1:
        raise ValueError("q must lie in [0, 1]")
    cumulative = np.cumsum(np.asarray(counts, dtype=np.int64))
    n = int(cumulative[-1]) if len(cumulative) else 0
    if n == 0:
        return None
    rank = q * n
    index = int(np.searchsorted(cumulative, rank, side="left"))
    index = min(max(index, int(np.argmax(cumulative > 0))), len(cumulative) - 1)  # q = 0: first non-empty
    before = int(cumulative[index - 1]) if index else 0
    in_bucket = int(cumulative[index]) - before
    fraction = min(max((rank - before) / in_bucket, 0.0), 1.0)
    low, high = float(LOWER_EDGES[index]), float(UPPER_EDGES[index])
    if index == 0:
        return low + fraction * (high - low)
    if index == BUCKET_COUNT - 1:
        return low
    return low * (high / low) ** fraction


def count_above(counts: Sequence[int], ms: float) -> int:
    """How many observations are certainly above `ms`.

    Conservative rule at bucket boundaries: the bucket that contains `ms` is not counted (some of its
    observations may lie below `ms`), so the answer counts only buckets whose every value exceeds `ms`. It
    never overstates the count, and understates it by at most the one bucket containing `ms`. A test that
    fires on "too many above" built on it therefore never fires because of bucketing.
    """
    return int(sum(counts[bucket_index(ms) + 1:]))
