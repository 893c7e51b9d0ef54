import random

import pytest

from migrations_app.domain.comparisons import (
    Attempt,
    Criteria,
    Pair,
    disagreement_above_noise,
    evaluation_report,
    paired_difference,
    paired_report,
    recommend,
    regression,
)


def simulated_pairs(*, drift: float, vary: float, n: int = 2000, noise_share: float = 0.5, seed: int = 1):
    """Answers as sample ids: the baseline gives 0 unless it varies; a drifting candidate gives -1."""
    rng = random.Random(seed)

    def draw():
        return 0 if rng.random() >= vary else rng.randrange(1, 10**6)

    pairs = []
    for _ in range(n):
        baseline = draw()
        candidate = -1 if rng.random() < drift else draw()
        rerun = draw() if rng.random() < noise_share else None
        pairs.append(Pair(disagree=candidate != baseline, score=float(candidate == baseline),
                          noise_disagree=None if rerun is None else rerun != baseline))
    return pairs


def test_drifting_candidate__share_above_noise_recovers_the_drift_share():
    summary = disagreement_above_noise(simulated_pairs(drift=0.3, vary=0.15))
    assert summary.noise_floor.value == pytest.approx(1 - 0.85**2, abs=0.04)
    assert summary.above_noise.value == pytest.approx(0.3, abs=0.04)
    assert summary.above_noise.low < 0.3 < summary.above_noise.high


def test_lookalike_candidate__nothing_above_noise_however_noisy_the_baseline():
    for vary in (0.0, 0.15, 0.4):
        summary = disagreement_above_noise(simulated_pairs(drift=0.0, vary=vary))
        assert summary.above_noise.value == pytest.approx(0.0, abs=0.08)
        assert summary.above_noise.low <= 0.0 <= summary.above_noise.high


def test_no_noise_samples__floor_unknown_and_no_share_above_it():
    summary = disagreement_above_noise(simulated_pairs(drift=0.3, vary=0.1, noise_share=0.0, n=100))
    assert summary.noise_floor.value is None and summary.above_noise.value is None
    assert summary.disagreement.value is not None


def test_paired_difference__pairing_removes_shared_prompt_variation():
    rng = random.Random(3)
    prompt_cost = [rng.uniform(100, 3000) for _ in range(300)]
    baseline = [c + rng.gauss(0, 10) for c in prompt_cost]
    candidate = [c + 50 + rng.gauss(0, 10) for c in prompt_cost]
    estimate = paired_difference(candidate, baseline, tau=20)
    assert estimate.value == pytest.approx(50, abs=5)
    assert estimate.high - estimate.low < 20  # unpaired, the prompts' spread (±800) would swamp it


def test_paired_report__per_segment_breakdown():
    pairs = [Pair(disagree=i % 3 == 0, score=0.5, noise_disagree=False, segment="a" if i % 2 else "b",
                  latency_candidate_ms=110, latency_baseline_ms=100, cost_candidate=1, cost_baseline=2)
             for i in range(60)]
    report = paired_report(pairs)
    assert set(report.per_segment) == {"a", "b"} and report.latency_ratio == pytest.approx(1.1)
    assert report.cost_difference.value == pytest.approx(-1) and report.cost_ratio == 0.5


def attempts(n, *, accuracy, latency, cost, ok=True):
    return [Attempt(case=i % 10, repetition=i // 10, ok=ok, latency_ms=latency, cost=cost, accuracy=accuracy,
                    segment="s" + str(i % 2)) for i in range(n)]


def test_recommendation__playbook_defaults():
    good = evaluation_report(attempts(30, accuracy=1.0, latency=500, cost=0.002),
                             attempts(30, accuracy=1.0, latency=900, cost=0.004))
    assert recommend(good["arms"]["candidate"], Criteria())["passed"] is True
    slow = evaluation_report([], attempts(30, accuracy=1.0, latency=2500, cost=0.004))
    verdict = recommend(slow["arms"]["candidate"], Criteria())
    assert verdict["passed"] is False and "latency_p95_ms" in verdict["summary"]


def test_recommendation__without_expected_answers_accuracy_falls_back_to_agreement():
    candidate = {"accuracy": None, "agreement": 0.97, "latency_p95_ms": 100, "cost_per_request": 0.001}
    verdict = recommend(candidate, Criteria())
    assert verdict["passed"] and "agreement with the baseline" in verdict["checks"][0]["detail"]


def test_regression__drops_beyond_allowances_named():
    before = {"accuracy": 0.97, "latency_p95_ms": 1000, "cost_per_request": 0.002, "failure_rate": 0.0}
    after = {"accuracy": 0.90, "latency_p95_ms": 1500, "cost_per_request": 0.0021, "failure_rate": 0.0}
    assert regression(before, after) == ["accuracy fell from 0.970 to 0.900", "latency_p95_ms rose from 1000 to 1500"]
    assert regression(before, before) == []
