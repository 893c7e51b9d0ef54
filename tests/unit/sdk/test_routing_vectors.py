"""The language-neutral routing vectors (cutover/spec/routing_vectors.json) replayed through cutover.routing."""

import hashlib
import json
from importlib import resources

import pytest

from cutover.routing import Arm, ConversationPins, Reason, bucket, choose_arm

VECTORS = json.loads(resources.files("cutover").joinpath("spec/routing_vectors.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", VECTORS["buckets"], ids=lambda c: f"{c['salt']}|{c['key']}")
def test_bucket__vector__same_hash_and_value(case):
    digest = hashlib.sha1(f"{case['salt']}.{case['key']}".encode()).hexdigest()
    assert digest[:15] == case["sha1_prefix"]
    assert bucket(case["salt"], case["key"]) == pytest.approx(case["bucket"], abs=1e-12)
    assert 0 <= case["bucket"] < 1


def test_routing__every_vector__same_arm():
    never = lambda: pytest.fail("a keyed or 0/100 % decision must not draw a random number")  # noqa: E731
    for case in VECTORS["routing"]:
        draw = 0.999999 if case["candidate_percent"] == 0 else 0.0
        rand = never if case["routing_key"] is not None else (lambda draw=draw: draw)
        decision = choose_arm(candidate_percent=case["candidate_percent"], rollback=case["rollback"],
                              salt=case["salt"], routing_key=case["routing_key"], rand=rand)
        assert decision.arm.value == case["arm"], case


@pytest.mark.parametrize("conversation", VECTORS["conversations"], ids=lambda c: c["description"][:40])
def test_conversations__vector_sequence__same_arms(conversation):
    pins = ConversationPins()
    for step in conversation["steps"]:
        decision = pins.route(plan="p", conversation_id=step["conversation_id"], salt=conversation["salt"],
                              candidate_percent=step["candidate_percent"], rollback=step["rollback"],
                              routing_key=step["routing_key"])
        assert decision.arm.value == step["arm"], step


def test_raising_the_percent__only_moves_units_to_the_candidate():
    keys = [f"user-{i}" for i in range(2000)]
    previous = set()
    for percent in (0, 1, 5, 20, 50, 80, 100):
        on_candidate = {k for k in keys if choose_arm(candidate_percent=percent, rollback=False, salt="s",
                                                      routing_key=k).arm is Arm.CANDIDATE}
        assert previous <= on_candidate
        previous = on_candidate
    assert len(previous) == len(keys)


def test_split__2000_keys_at_30_percent__within_sampling_error():
    hits = sum(choose_arm(candidate_percent=30, rollback=False, salt="abc", routing_key=f"u{i}").arm is Arm.CANDIDATE
               for i in range(2000))
    assert abs(hits / 2000 - 0.30) < 4 * (0.3 * 0.7 / 2000) ** 0.5


def test_rollback__any_percent__baseline_with_reason():
    decision = choose_arm(candidate_percent=100, rollback=True, salt="s", routing_key="u")
    assert decision.arm is Arm.BASELINE and decision.reason is Reason.ROLLBACK


def test_conversation_pins__bounded_lru__evicts_oldest():
    pins = ConversationPins(max_size=3)
    for i in range(5):
        pins.route(plan="p", conversation_id=f"c{i}", candidate_percent=50, rollback=False, salt="s", routing_key=None)
    assert len(pins) == 3
