"""Which judge settings go together: a judge comparator needs a judge endpoint on a pinned model and a threshold
that does not count ties as disagreements."""

import pytest

from migrations_app.domain.judging import COMPARATORS, JUDGE, judge_settings_problems


def problems(comparator: str = JUDGE, judge_model: str | None = "gpt-4o-2024-08-06", threshold: float | None = 0.5):
    return judge_settings_problems(comparator=comparator, judge_model=judge_model, threshold=threshold,
                                   threshold_field="shadow_agreement_threshold")


def test_judge_settings__pinned_judge_and_threshold_at_most_half__no_problems():
    assert problems() == {} and problems(threshold=0.3) == {}


def test_judge_settings__judge_comparator_without_endpoint__blames_judge_endpoint():
    assert set(problems(judge_model=None)) == {"judge_endpoint"}


@pytest.mark.parametrize("model", ["gpt-4o", "claude-3-5-sonnet-latest", "gemini-pro"])
def test_judge_settings__moving_alias__blames_judge_endpoint_whatever_the_comparator(model):
    assert "moving alias" in problems(judge_model=model)["judge_endpoint"]
    assert "moving alias" in problems(comparator="token_f1", judge_model=model)["judge_endpoint"]


def test_judge_settings__threshold_above_half__blames_the_named_threshold_field():
    assert set(problems(threshold=0.6)) == {"shadow_agreement_threshold"}
    assert "every tie" in problems(threshold=0.6)["shadow_agreement_threshold"]


def test_judge_settings__other_comparators__no_judge_needed_and_any_threshold():
    assert problems(comparator="token_f1", judge_model=None, threshold=0.9) == {}


def test_comparators__every_cheap_comparator_and_the_judge():
    assert JUDGE in COMPARATORS and {"token_f1", "normalised", "exact", "json_equal"} <= set(COMPARATORS)
