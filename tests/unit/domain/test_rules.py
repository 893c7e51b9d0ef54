import pytest

from migrations_app.domain import playbook
from migrations_app.domain.rules import Comparison, Metric, breaches, step_percent_problems, threshold_problem


def test_playbook_defaults__valid_under_our_own_checks():
    assert [step.percent for step in playbook.DEFAULT_STEPS] == [5, 25, 50, 100]
    assert step_percent_problems([step.percent for step in playbook.DEFAULT_STEPS]) == {}
    for rule in playbook.DEFAULT_RULES:
        assert threshold_problem(rule.metric, rule.comparison, rule.threshold) is None, rule


def test_steps__falling_percent__names_the_offending_step():
    assert step_percent_problems([5, 25, 20, 100]) == {2: "must be above the previous step's 25"}


def test_steps__percent_over_100_or_zero__refused():
    assert set(step_percent_problems([0, 50, 101])) == {0, 2}


@pytest.mark.parametrize("threshold", [0, -1.5])
def test_threshold__not_positive__refused(threshold):
    assert threshold_problem(Metric.ERROR_RATE, Comparison.RATIO, threshold) == "must be a positive number"


def test_threshold__ratio_below_one_on_error_rate__refused_because_it_fires_when_better():
    assert "better than the baseline" in threshold_problem(Metric.ERROR_RATE, Comparison.RATIO, 0.9)


def test_threshold__ratio_above_one_on_satisfaction__refused():
    assert threshold_problem(Metric.SATISFACTION, Comparison.RATIO, 1.2) is not None


def test_threshold__delta_above_one_on_a_proportion__refused_as_unreachable():
    assert "can never fire" in threshold_problem(Metric.ERROR_RATE, Comparison.DELTA, 2)


def test_breaches__error_rate_doubles_against_ratio_two__not_yet_at_exactly_double():
    assert not breaches(Metric.ERROR_RATE, Comparison.RATIO, 2.0, candidate=0.02, baseline=0.01)
    assert breaches(Metric.ERROR_RATE, Comparison.RATIO, 2.0, candidate=0.021, baseline=0.01)


def test_breaches__satisfaction_below_baseline_minus_delta__breached_in_the_direction_of_harm():
    assert breaches(Metric.SATISFACTION, Comparison.DELTA, 0.15, candidate=0.6, baseline=0.8)
    assert not breaches(Metric.SATISFACTION, Comparison.DELTA, 0.15, candidate=0.95, baseline=0.8)


def test_breaches__absolute_latency_bound__candidate_alone():
    assert breaches(Metric.LATENCY_P95, Comparison.ABSOLUTE, 2000, candidate=2500, baseline=None)


def test_breaches__relative_rule_without_baseline__not_breached():
    assert not breaches(Metric.ERROR_RATE, Comparison.RATIO, 1.3, candidate=0.5, baseline=None)
