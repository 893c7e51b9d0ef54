"""The simulator's scripts: latency distribution, error rates, deterministic and altered answers, files."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from cutover.simulator.scenario import (
    REFUSAL_TEXT,
    ErrorRates,
    LatencySpec,
    ModelScript,
    Scenario,
    SimRequest,
    render_answer,
)


def ask(model: str, text: str, **fields: object) -> SimRequest:
    return SimRequest(model=model, system="", turns=(("user", text),), **fields)  # type: ignore[arg-type]


def test_lognormal_latency__has_the_scripted_median_and_p95():
    spec = LatencySpec(median_ms=400, p95_ms=1200)
    rng = random.Random(1)
    samples = sorted(spec.sample_ms(rng) for _ in range(20_000))
    assert statistics.median(samples) == pytest.approx(400, rel=0.05)
    assert samples[int(0.95 * len(samples))] == pytest.approx(1200, rel=0.07)


def test_latency_without_p95__constant():
    assert LatencySpec(median_ms=30).sample_ms(random.Random()) == 30


def test_error_rates__drawn_at_the_scripted_frequencies():
    rates = ErrorRates(rate_limited=0.1, server_error=0.05, timeout=0.01)
    rng = random.Random(7)
    draws = [rates.draw(rng) for _ in range(50_000)]
    assert draws.count("rate_limited") / len(draws) == pytest.approx(0.1, abs=0.01)
    assert draws.count("server_error") / len(draws) == pytest.approx(0.05, abs=0.005)
    assert draws.count(None) / len(draws) == pytest.approx(0.84, abs=0.01)


def test_deterministic_answer__same_per_prompt_and_seed_different_otherwise():
    scenario = Scenario(seed=1)
    first = render_answer(scenario, ask("gpt-4", "Where is my order?")).text
    assert render_answer(scenario, ask("gpt-4", "Where is my order?")).text == first
    assert render_answer(scenario, ask("gpt-4", "Where is my refund?")).text != first
    assert render_answer(Scenario(seed=2), ask("gpt-4", "Where is my order?")).text != first


def test_template_echo_json_and_refusal_answers():
    scenario = Scenario.from_dict({"models": {
        "t": {"answer": {"kind": "template", "template": "[{model}] You said: {last_user}"}},
        "e": {"answer": {"kind": "echo"}},
        "j": {"answer": {"kind": "json", "json": {"ok": True}, "wrap": "json_fence"}},
        "r": {"answer": {"kind": "refusal"}},
    }})
    assert render_answer(scenario, ask("t", "hi")).text == "[t] You said: hi"
    assert render_answer(scenario, ask("e", "hi")).text == "hi"
    assert render_answer(scenario, ask("j", "hi")).text == '```json\n{"ok": true}\n```'
    assert render_answer(scenario, ask("r", "hi")).text == REFUSAL_TEXT


def test_mirror__another_models_answer_altered_on_the_scripted_fraction_of_prompts():
    scenario = Scenario.from_dict({"seed": 3, "models": {
        "candidate": {"answer": {"kind": "mirror", "mirror_model": "baseline", "alter_fraction": 0.2,
                                 "alter": "replace", "alter_text": "ALTERED"}},
    }})
    prompts = [f"question {i}" for i in range(2_000)]
    altered = [p for p in prompts if render_answer(scenario, ask("candidate", p)).text == "ALTERED"]
    same = [p for p in prompts if render_answer(scenario, ask("candidate", p)).text
            == render_answer(scenario, ask("baseline", p)).text]
    assert len(altered) / len(prompts) == pytest.approx(0.2, abs=0.03)
    assert len(altered) + len(same) == len(prompts)
    # the same prompts are altered every time: a regression is reproducible
    assert altered == [p for p in prompts if render_answer(scenario, ask("candidate", p)).text == "ALTERED"]


def test_refusal_rate__refuses_that_fraction_of_prompts():
    scenario = Scenario.from_dict({"models": {"m": {"answer": {"refusal_rate": 0.3}}}})
    answers = [render_answer(scenario, ask("m", f"q{i}")).text for i in range(1_000)]
    assert answers.count(REFUSAL_TEXT) / len(answers) == pytest.approx(0.3, abs=0.05)


def test_max_tokens__answer_cut_and_finish_length():
    answer = render_answer(Scenario(), ask("m", "q", max_tokens=5))
    assert answer.finish == "length" and answer.output_tokens == 5 and len(answer.text) <= 20


def test_stop_sequence__answer_ends_before_it():
    scenario = Scenario.from_dict({"models": {"m": {"answer": {"kind": "template", "template": "one. END two"}}}})
    assert render_answer(scenario, ask("m", "q", stop=("END",))).text == "one. "


def test_usage__estimated_from_characters_unless_fixed():
    scenario = Scenario.from_dict({"models": {"fixed": {"usage": {"input_tokens": 7, "output_tokens": 9}}}})
    estimated = render_answer(scenario, ask("any", "x" * 400))
    assert estimated.input_tokens == 101  # 401 characters (a newline joins system and turns) / 4
    fixed = render_answer(scenario, ask("fixed", "x" * 400))
    assert (fixed.input_tokens, fixed.output_tokens) == (7, 9)


def test_scenario_file__loaded_and_unknown_fields_refused(tmp_path):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"seed": 5, "models": {"gpt-4": {
        "latency": {"median_ms": 400, "p95_ms": 1200}, "errors": {"rate_limited": 0.02, "retry_after_s": 2},
    }}}))
    scenario = Scenario.load(path)
    assert scenario.script_for("gpt-4").latency.p95_ms == 1200
    assert scenario.script_for("anything-else") == scenario.default

    path.write_text(json.dumps({"models": {"gpt-4": {"latncy": {"median_ms": 1}}}}))
    with pytest.raises(ValueError, match="latncy"):
        Scenario.load(path)


def test_script_update__deep_merges_changes_into_the_current_script():
    script = ModelScript.from_dict({"latency": {"median_ms": 100, "p95_ms": 300}, "errors": {"rate_limited": 0.01}})
    regressed = script.updated({"errors": {"server_error": 0.3}, "latency": {"median_ms": 900}})
    assert regressed.errors.rate_limited == 0.01 and regressed.errors.server_error == 0.3
    assert regressed.latency == LatencySpec(median_ms=900, p95_ms=300)


# --- a judge ------------------------------------------------------------------------------------------------------


def judge_prompt(first: str, second: str) -> str:
    from cutover.comparators import JudgeComparator
    from cutover.providers import EndpointSpec

    judge = JudgeComparator(EndpointSpec(provider="openai", model="sim-judge-2024-08-06", api_key_env="K"))
    return judge.request_for("Where is my refund?", first, second).messages[0].content


@pytest.mark.parametrize(("first", "second", "winner"), [
    ("Your refund is APPROVED.", "Please wait.", "A"), ("Please wait.", "Refund approved.", "B")])
def test_judge_answer__response_containing_the_preferred_text_wins_in_either_position(first, second, winner):
    from cutover.comparators import parse_verdict

    scenario = Scenario.from_dict({"models": {"j": {"answer": {"kind": "judge", "judge_prefers": "approved"}}}})
    verdict = parse_verdict(render_answer(scenario, ask("j", judge_prompt(first, second))).text)
    assert verdict.winner == winner and "contains 'approved'" in verdict.reason


def test_judge_answer__neither_or_both_preferred__the_scripted_otherwise():
    tie = Scenario.from_dict({"models": {"j": {"answer": {"kind": "judge", "judge_prefers": "approved"}}}})
    biased = Scenario.from_dict({"models": {"j": {"answer": {"kind": "judge", "judge_otherwise": "A"}}}})
    assert json.loads(render_answer(tie, ask("j", judge_prompt("no", "nope"))).text)["winner"] == "tie"
    assert json.loads(render_answer(tie, ask("j", judge_prompt("approved", "approved"))).text)["winner"] == "tie"
    assert json.loads(render_answer(biased, ask("j", judge_prompt("x", "y"))).text)["winner"] == "A"


def test_judge_answer__prompt_without_two_responses__no_verdict():
    from cutover.comparators import parse_verdict

    scenario = Scenario.from_dict({"models": {"j": {"answer": {"kind": "judge"}}}})
    assert parse_verdict(render_answer(scenario, ask("j", "Hello")).text).winner is None
