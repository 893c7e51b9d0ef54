import pytest

from cutover.comparators import (
    Score,
    exact_match,
    get_comparator,
    json_equal,
    json_schema_valid,
    length_ratio,
    normalised_match,
    refusal_match,
    token_f1,
)


def test_score__outside_the_unit_interval__refused():
    with pytest.raises(ValueError):
        Score(1.2, "too good")
    with pytest.raises(ValueError):
        Score(float("nan"), "unknown")


def test_exact_match__only_surrounding_whitespace_forgiven():
    assert exact_match("Paris", " Paris\n").value == 1.0
    different = exact_match("Paris.", "paris")
    assert different.value == 0.0 and "character 0" in different.reason


def test_normalised_match__case_punctuation_spacing_and_wrapping_ignored():
    assert normalised_match("<answer>The answer is: PARIS!</answer>", "the answer is paris").value == 1.0
    assert normalised_match("Paris", "Lyon").value == 0.0


def test_token_f1__rouge_l_on_tokens():
    assert token_f1("the cat sat on the mat", "the cat sat on the mat").value == 1.0
    partial = token_f1("The cat sat on the mat", "the cat is on a mat")
    assert partial.value == pytest.approx(2 / 3, abs=1e-6)  # LCS "the cat on mat": 4 of 6 each way
    assert token_f1("mat the on sat cat the", "the cat sat on the mat").value <= 0.5  # order matters
    assert token_f1("", "").value == 1.0 and token_f1("", "words").value == 0.0


def test_json_equal__key_order_number_spelling_and_fences_ignored():
    assert json_equal('{"a": 1, "b": [1, 2]}', '```json\n{"b": [1, 2], "a": 1.0}\n```').value == 1.0


def test_json_equal__partial_agreement_names_the_first_difference():
    score = json_equal('{"a": 1, "b": {"c": 2, "d": 3}}', '{"a": 1, "b": {"c": 2, "d": 4}}')
    assert score.value == pytest.approx(2 / 3) and "$.b.d" in score.reason
    assert json_equal('{"flag": 1}', '{"flag": true}').value == 0.0  # true is not 1
    assert json_equal("not json", '{"a": 1}').value == 0.0


def test_json_schema_valid__violations_and_prose_wrapped_json_fail():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert json_schema_valid('{"n": 3}', schema).value == 1.0
    wrong = json_schema_valid('{"n": "three"}', schema)
    assert wrong.value == 0.0 and "$.n" in wrong.reason
    assert json_schema_valid('Sure! Here it is: {"n": 3}', schema).value == 0.0
    with pytest.raises(ValueError):
        json_schema_valid("{}", {"type": "no-such-type"})


def test_refusal_match__one_refusing_is_a_mismatch():
    refusal = "I'm sorry, but I can't help with that request."
    assert refusal_match(refusal, refusal).value == 1.0
    assert refusal_match(refusal, "Your order ships today.").value == 0.0
    assert refusal_match("Sure.", "Your order ships today.").value == 1.0


def test_length_ratio__shorter_over_longer():
    score = length_ratio("one two", "one two three four")
    assert score.value == 0.5 and "0.50×" in score.reason


def test_registry__names_every_reference_comparator():
    assert get_comparator("token_f1") is token_f1
    with pytest.raises(KeyError):
        get_comparator("vibes")
