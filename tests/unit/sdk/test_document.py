"""Parsing the SDK config document: a bad field anywhere rejects the whole document."""

import copy

import pytest

from cutover.providers.types import Provider
from cutover.routing import Arm
from cutover.sdk.document import InvalidDocument, parse_document

GOOD = {"environment": "prod", "version": 42, "plans": [
    {"key": "support-bot", "state": "rolling_out", "candidate_percent": 5.0, "rollback": False,
     "shadow_sample_rate": 0.1, "salt": "b3f1",
     "baseline": {"provider": "openai", "model": "gpt-4", "base_url": None, "params": {}, "prompt_adapter": None},
     "candidate": {"provider": "anthropic", "model": "claude-3-5-sonnet", "base_url": None, "params": {},
                   "prompt_adapter": "claude-v1"}}]}


def test_parse__interfaces_example__plans_and_endpoints():
    document = parse_document(GOOD)
    plan = document.plan("support-bot")
    assert document.version == 42 and plan.candidate_percent == 5.0 and plan.salt == "b3f1"
    assert plan.arm(Arm.CANDIDATE).endpoint.provider is Provider.ANTHROPIC
    assert plan.arm(Arm.CANDIDATE).endpoint.api_key_env == "ANTHROPIC_API_KEY"
    assert plan.candidate.prompt_adapter == "claude-v1" and plan.baseline.prompt_adapter is None


@pytest.mark.parametrize(("path", "value"), [
    (("version",), "42"), (("plans",), {}), (("plans", 0, "candidate_percent"), 101),
    (("plans", 0, "candidate_percent"), "5"), (("plans", 0, "rollback"), "no"), (("plans", 0, "salt"), None),
    (("plans", 0, "baseline", "provider"), "bard"), (("plans", 0, "candidate"), None),
    (("plans", 0, "shadow_sample_rate"), 2), (("plans", 0, "key"), ""),
])
def test_parse__bad_field__invalid_document(path, value):
    data = copy.deepcopy(GOOD)
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(InvalidDocument):
        parse_document(data)


@pytest.mark.parametrize("data", [None, [], "garbage", {"plans": []}])
def test_parse__not_a_document__invalid(data):
    with pytest.raises(InvalidDocument):
        parse_document(data)


def test_parse__completed_plan_without_baseline__candidate_stands_in_for_it():
    data = copy.deepcopy(GOOD)
    data["plans"][0] |= {"state": "completed", "candidate_percent": 100.0, "baseline": None}
    plan = parse_document(data).plan("support-bot")
    assert plan.baseline == plan.candidate and plan.baseline.endpoint.model == "claude-3-5-sonnet"


def test_parse__missing_baseline_while_the_baseline_still_serves__invalid():
    data = copy.deepcopy(GOOD)
    data["plans"][0]["baseline"] = None  # at 5 % the baseline serves 95 %: it cannot be missing
    with pytest.raises(InvalidDocument, match="baseline"):
        parse_document(data)
