import random

import pytest

from cutover.comparators import JudgeComparator, parse_verdict
from cutover.comparators.judge import is_pinned
from cutover.providers import Completion, EndpointSpec, FinishReason

JUDGE = EndpointSpec(provider="openai", model="gpt-4o-2024-08-06", api_key_env="OPENAI_API_KEY",
                     input_price_per_mtok=2.5, output_price_per_mtok=10)


class ScriptedJudge:
    """Stands in for the provider: prefers whichever response contains `better`, or always says A."""

    def __init__(self, better: str | None = None, raw: str | None = None) -> None:
        self.better, self.raw, self.requests = better, raw, []

    def __call__(self, endpoint, request):
        self.requests.append(request)
        prompt = request.messages[0].content
        first = prompt.split("[Response A]")[1].split("[End of response A]")[0]
        if self.raw is not None:
            text = self.raw
        elif self.better is None:
            text = '{"winner": "A", "reason": "first is best"}'
        else:
            text = '{"winner": "%s", "reason": "more complete"}' % ("A" if self.better in first else "B")
        return Completion(text=text, finish_reason=FinishReason.STOP, input_tokens=100, output_tokens=20,
                          latency_ms=1, provider="openai", model=endpoint.model, cost_usd=0.00045)


def test_parse_verdict__json_fenced_prose_and_bracket_forms():
    assert parse_verdict('```json\n{"winner": "B", "reason": "clearer"}\n```').winner == "B"
    assert parse_verdict('Both fine. {"winner": "tie", "reason": "same"}').winner == "tie"
    assert parse_verdict("My verdict: [[A]]").winner == "A"
    assert parse_verdict("I like the second one").winner is None


def test_judge__better_candidate_wins_whichever_position_it_is_shown_in():
    caller = ScriptedJudge(better="DETAILED")
    judge = JudgeComparator(JUDGE, rng=random.Random(1), caller=caller)
    scores = [judge("DETAILED answer", "short", request_text="q").value for _ in range(20)]
    assert scores == [1.0] * 20
    firsts = [r.messages[0].content.index("DETAILED") < r.messages[0].content.index("short") for r in caller.requests]
    assert 0 < sum(firsts) < 20  # the order was randomised
    assert judge.cost_usd == pytest.approx(20 * 0.00045)
    assert all(r.temperature == 0.0 and r.response_format == "json" for r in caller.requests)


def test_judge__position_bias_cancels_over_random_orders_and_vanishes_with_both_orders():
    biased = JudgeComparator(JUDGE, rng=random.Random(2), caller=ScriptedJudge())  # always picks A
    mean = sum(biased("x", "y").value for _ in range(400)) / 400
    assert mean == pytest.approx(0.5, abs=0.07)
    both = JudgeComparator(JUDGE, both_orders=True, caller=ScriptedJudge())
    assert both("x", "y").value == 0.5


def test_judge__unparseable_verdict__neutral_score_marked_unparsed():
    score = JudgeComparator(JUDGE, caller=ScriptedJudge(raw="no idea"))("x", "y")
    assert score.value == 0.5 and score.details["parsed"] is False and "unparseable" in score.reason


def test_judge__moving_model_alias__refused_unless_allowed():
    assert not is_pinned("gpt-4o") and not is_pinned("claude-3-5-sonnet-latest")
    assert is_pinned("claude-3-5-sonnet-20241022")
    with pytest.raises(ValueError, match="pin"):
        JudgeComparator(EndpointSpec(provider="openai", model="gpt-4o", api_key_env="K"))
    JudgeComparator(EndpointSpec(provider="openai", model="gpt-4o", api_key_env="K"), allow_unpinned=True)
