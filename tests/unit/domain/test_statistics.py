import json

import numpy as np
import pytest

from migrations_app.domain import histogram
from migrations_app.domain.rules import Metric
from migrations_app.domain.statistics import (
    ArmWindow,
    cost_per_successful_request,
    metric_samples,
    metric_value,
)


def window() -> ArmWindow:
    latencies = np.random.default_rng(2).lognormal(np.log(800), 0.5, 1000)
    return ArmWindow(
        requests=1000, errors=20, timeouts=5, rate_limited=40, fallbacks=10, successes=935,
        latency_hist=histogram.counts_of(latencies), ttft_hist=histogram.counts_of(latencies / 4),
        cost_sum=2.0, cost_sq_sum=0.005, success_cost_sum=1.87, format_checked=500, format_ok=490,
        refusals=3, feedback_count=100, satisfaction_sum=80.0, satisfaction_sq_sum=80.0,
        task_reported=50, task_completed=45,
    )


@pytest.mark.parametrize(("metric", "value", "samples"), [
    (Metric.ERROR_RATE, 0.02, 1000),
    (Metric.TIMEOUT_RATE, 0.005, 1000),
    (Metric.FALLBACK_RATE, 0.01, 1000),
    (Metric.REFUSAL_RATE, 0.003, 1000),
    (Metric.SATISFACTION, 0.8, 100),
    (Metric.TASK_COMPLETION, 0.9, 50),
    (Metric.COST_PER_REQUEST, 0.002, 1000),
    (Metric.FORMAT_COMPLIANCE, 0.98, 500),
])
def test_metric_value__point_estimate_and_its_sample_size(metric, value, samples):
    assert metric_value(window(), metric) == pytest.approx(value)
    assert metric_samples(window(), metric) == samples


def test_error_rate__rate_limited_requests__are_not_errors():
    assert metric_value(ArmWindow(requests=100, errors=0, rate_limited=60), Metric.ERROR_RATE) == 0


@pytest.mark.parametrize(("metric", "q"), [(Metric.LATENCY_P50, 0.5), (Metric.LATENCY_P95, 0.95),
                                           (Metric.LATENCY_P99, 0.99)])
def test_latency_quantiles__read_from_the_histogram(metric, q):
    w = window()
    assert metric_value(w, metric) == histogram.quantile(w.latency_hist, q)
    assert metric_samples(w, metric) == 1000


def test_ttft_p95__reads_the_ttft_histogram():
    w = window()
    assert metric_value(w, Metric.TTFT_P95) == pytest.approx(metric_value(w, Metric.LATENCY_P95) / 4, rel=0.06)


def test_empty_window__no_values_and_zero_samples():
    empty = ArmWindow.empty()
    for metric in Metric:
        assert metric_value(empty, metric) is None
        assert metric_samples(empty, metric) == 0


def test_windows__add_up_field_by_field_and_histograms_elementwise():
    total = window() + window() + ArmWindow.empty()
    assert total.requests == 2000 and total.errors == 40 and total.cost_sum == pytest.approx(4.0)
    assert sum(total.latency_hist) == 2000
    assert metric_value(total, Metric.ERROR_RATE) == pytest.approx(0.02)


def test_cost_per_successful_request__all_spend_over_successes():
    assert cost_per_successful_request(window()) == pytest.approx(2.0 / 935)


def test_as_dict__json_round_trip():
    w = window()
    assert ArmWindow.from_dict(json.loads(json.dumps(w.as_dict()))) == w
