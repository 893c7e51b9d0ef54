import numpy as np
import pytest

from migrations_app.domain import histogram


def test_layout__a_few_hundred_log_spaced_buckets_from_1_ms_to_10_minutes__is_stable():
    # Stored rollups depend on this exact layout; changing it needs a data migration.
    assert histogram.BUCKET_COUNT == 275
    assert histogram.EDGES[0] == 1.0
    assert histogram.EDGES[1] == pytest.approx(1.05)
    assert histogram.EDGES[-1] >= 600_000


@pytest.mark.parametrize(("ms", "index"), [
    (0.0, 0), (0.5, 0), (-3.0, 0), (1.0, 1), (1.0499, 1), (1.05, 2), (10 * 60_000, 273), (1e9, 274),
])
def test_bucket_index__lower_edge_inclusive_upper_edge_exclusive(ms, index):
    assert histogram.bucket_index(ms) == index


def test_bucket_indices__vectorised__agrees_with_bucket_index():
    values = np.random.default_rng(1).lognormal(5, 3, 2000)
    assert list(histogram.bucket_indices(values)) == [histogram.bucket_index(v) for v in values]


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_quantile__lognormal_latencies__matches_numpy_within_one_bucket(q):
    values = np.random.default_rng(7).lognormal(np.log(800), 0.6, 20_000)
    estimate = histogram.quantile(histogram.counts_of(values), q)
    assert estimate == pytest.approx(np.quantile(values, q), rel=0.05)


def test_quantile__no_observations__none():
    assert histogram.quantile(histogram.empty(), 0.95) is None


def test_quantile__everything_in_overflow__reports_the_overflow_lower_edge():
    counts = histogram.counts_of([2e6, 3e6])
    assert histogram.quantile(counts, 0.5) == histogram.EDGES[-1]


def test_count_above__never_overstates_and_misses_at_most_the_bucket_holding_the_value():
    values = np.random.default_rng(3).lognormal(np.log(800), 0.5, 10_000)
    counts = histogram.counts_of(values)
    for ms in (300.0, 800.0, 1234.5, 2000.0, histogram.EDGES[150]):
        true_count = int((values > ms).sum())
        own_bucket = counts[histogram.bucket_index(ms)]
        assert true_count - own_bucket <= histogram.count_above(counts, ms) <= true_count


def test_merge__elementwise__and_empty_stands_for_zeros():
    a, b = histogram.counts_of([5, 50, 500]), histogram.counts_of([50])
    merged = histogram.merge(a, b)
    assert merged[histogram.bucket_index(50)] == 2 and sum(merged) == 4
    assert histogram.merge((), b) == b and histogram.merge(a, ()) == a


def test_merge__different_layouts__refused():
    with pytest.raises(ValueError, match="different layouts"):
        histogram.merge((1, 2), (1, 2, 3))
