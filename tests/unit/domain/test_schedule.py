"""The rollout scheduler's decisions."""

from dataclasses import replace

from migrations_app.domain.schedule import (
    MonitorLevel,
    Move,
    ShadowFacts,
    StepFacts,
    evaluation_decision,
    monitor_level,
    optimizing_decision,
    rollout_decision,
    shadow_decision,
    step_deadline_seconds,
)

READY = StepFacts(percent=5, is_last=False, held_seconds=3600, min_hold_seconds=600, final_hold_seconds=0,
                  deadline_seconds=7200, min_samples=500, needs_approval=False, candidate_requests=800,
                  baseline_requests=15000, candidate_rate_limited=0, rule_statuses=["healthy"] * 6,
                  observed_requests_per_minute=100, candidate_rpm_limit=None, next_percent=25)


def test_step__held_sampled_and_every_rule_healthy__advances():
    assert rollout_decision(READY).move is Move.ADVANCE


def test_step__hold_not_over__waits_naming_the_hold():
    decision = rollout_decision(replace(READY, held_seconds=100))
    assert decision.move is Move.WAIT and "hold (100 of 600 s)" in decision.reason


def test_step__one_rule_short_of_data__waits_rather_than_advancing():
    decision = rollout_decision(replace(READY, rule_statuses=["healthy"] * 5 + ["not_enough_data"]))
    assert decision.move is Move.WAIT and "5 of 6 are" in decision.reason


def test_step__too_few_candidate_samples__waits():
    decision = rollout_decision(replace(READY, candidate_requests=100))
    assert decision.move is Move.WAIT and "samples per arm (100 of 500)" in decision.reason


def test_step__needs_approval__waits_for_a_person_even_when_healthy():
    decision = rollout_decision(replace(READY, needs_approval=True))
    assert decision.move is Move.WAIT and "approval" in decision.reason


def test_step__inconclusive_past_its_deadline__pauses():
    decision = rollout_decision(replace(READY, held_seconds=7300, rule_statuses=["healthy", "inconclusive"]))
    assert decision.move is Move.PAUSE and "inconclusive" in decision.reason


def test_step__past_deadline_but_only_short_of_approval__keeps_waiting():
    assert rollout_decision(replace(READY, held_seconds=9000, needs_approval=True)).move is Move.WAIT


def test_step__candidate_rate_limited__ramp_holds_instead_of_advancing():
    decision = rollout_decision(replace(READY, candidate_rate_limited=40))
    assert decision.move is Move.WAIT and "429" in decision.reason


def test_step__next_percent_beyond_candidate_rpm_headroom__holds():
    decision = rollout_decision(replace(READY, observed_requests_per_minute=1000, candidate_rpm_limit=200,
                                        next_percent=25))
    assert decision.move is Move.WAIT and "above its limit of 200" in decision.reason


def test_last_step__final_hold_longer_than_its_own__waits_for_the_final_hold():
    decision = rollout_decision(replace(READY, is_last=True, percent=100, final_hold_seconds=7200))
    assert decision.move is Move.WAIT and "of 7200 s" in decision.reason


def test_monitor_level__playbook_watches_5_and_25_closely_and_later_steps_normally():
    assert [monitor_level(p) for p in (5, 25, 50, 100)] == [MonitorLevel.CLOSELY] * 2 + [MonitorLevel.NORMAL] * 2
    assert monitor_level(50, "closely") is MonitorLevel.CLOSELY


def test_step_deadline__default_twice_the_hold_and_at_least_an_hour_more():
    assert step_deadline_seconds(604800, None) == 2 * 604800
    assert step_deadline_seconds(60, None) == 3660
    assert step_deadline_seconds(60, 90) == 90


def test_evaluation__gate_outcomes():
    assert evaluation_decision(gate="passed").move is Move.ADVANCE
    assert evaluation_decision(gate="not_required").move is Move.ADVANCE
    assert evaluation_decision(gate="pending").move is Move.WAIT
    assert evaluation_decision(gate="failed").move is Move.PAUSE


SHADOW = ShadowFacts(elapsed_seconds=100, duration_seconds=60, comparisons=300, min_comparisons=100,
                     disagreement_above_noise_lower=-0.01, disagreement_above_noise_upper=0.03,
                     disagreement_above_noise=0.01, max_disagreement=0.05)


def test_shadow__long_enough_enough_comparisons_and_agreeing__advances():
    assert shadow_decision(SHADOW).move is Move.ADVANCE


def test_shadow__too_few_comparisons__waits():
    assert shadow_decision(replace(SHADOW, comparisons=20)).move is Move.WAIT


def test_shadow__disagreement_confidently_above_the_limit__pauses_for_a_person():
    decision = shadow_decision(replace(SHADOW, disagreement_above_noise=0.3, disagreement_above_noise_lower=0.25,
                                       disagreement_above_noise_upper=0.35))
    assert decision.move is Move.PAUSE and "30.0%" in decision.reason


def test_shadow__interval_straddles_the_limit__waits_for_more_comparisons():
    decision = shadow_decision(replace(SHADOW, disagreement_above_noise=0.02, disagreement_above_noise_lower=-0.1,
                                       disagreement_above_noise_upper=0.15))
    assert decision.move is Move.WAIT and "more shadow comparisons" in decision.reason


def test_optimizing__stable_past_cleanup__completes():
    assert optimizing_decision(elapsed_seconds=10, cleanup_after_seconds=5).move is Move.ADVANCE
    assert optimizing_decision(elapsed_seconds=1, cleanup_after_seconds=5).move is Move.WAIT
