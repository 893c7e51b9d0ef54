"""Routing: which arm answers a request. Shared by the SDK, the sidecar and the control plane.

    bucket(salt, key) = int(sha1(f"{salt}.{key}").hexdigest()[:15], 16) / 0xFFFFFFFFFFFFFFF

A request with a routing key goes to the candidate iff its bucket < candidate_percent / 100, so raising
the percent only ever moves units from baseline to candidate. Without a key: random by the split.
Rollback flag → baseline, always. No config → baseline. Language-neutral test vectors live in
cutover/spec/routing_vectors.json; any other SDK should replay them.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

_SCALE = 0xFFFFFFFFFFFFFFF  # 15 hex digits


class Arm(StrEnum):
    BASELINE = "baseline"
    CANDIDATE = "candidate"


class Reason(StrEnum):
    NO_CONFIG = "no_config"  # no document, or the plan is not in it
    ROLLBACK = "rollback"  # the plan's rollback flag is set
    BUCKET = "bucket"  # sticky: the routing key's bucket against the percent
    RANDOM = "random"  # no routing key: a random draw against the percent
    PINNED = "pinned"  # the conversation keeps the arm it started on
    ERROR = "error"  # routing itself failed (a bug): the baseline, safely


@dataclass(frozen=True, slots=True)
class Decision:
    arm: Arm
    reason: Reason
    bucket: float | None = None


def bucket(salt: str, key: str) -> float:
    """A stable number in [0, 1) for a routing key under a plan's salt."""
    digest = hashlib.sha1(f"{salt}.{key}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:15], 16) / _SCALE


def choose_arm(*, candidate_percent: float, rollback: bool, salt: str, routing_key: str | None,
               rand: Callable[[], float] = random.random) -> Decision:
    """The arm for one request under one plan's settings (no conversation pinning)."""
    if rollback:
        return Decision(Arm.BASELINE, Reason.ROLLBACK)
    threshold = candidate_percent / 100.0
    if routing_key is None or routing_key == "":
        return Decision(Arm.CANDIDATE if rand() < threshold else Arm.BASELINE, Reason.RANDOM)
    value = bucket(salt, routing_key)
    return Decision(Arm.CANDIDATE if value < threshold else Arm.BASELINE, Reason.BUCKET, value)


class ConversationPins:
    """The arm each conversation first got (bounded LRU), so a percent change never switches a thread.

    A pin yields to a rollback (→ baseline) and to the candidate being withdrawn (0 %, → baseline) or
    fully promoted (100 %, → candidate), and the conversation is re-pinned there; between those, it stays
    where it started. Keyed by (plan, conversation id); without a routing key the conversation id is the
    bucketing key.
    """

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._pins: OrderedDict[tuple[str, str], Arm] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pins)

    def route(self, *, plan: str, conversation_id: str | None, candidate_percent: float, rollback: bool,
              salt: str, routing_key: str | None, rand: Callable[[], float] = random.random) -> Decision:
        decision = choose_arm(candidate_percent=candidate_percent, rollback=rollback, salt=salt,
                              routing_key=routing_key if routing_key else conversation_id, rand=rand)
        if not conversation_id:
            return decision
        # A rollback, or a candidate withdrawn (0 %) or fully promoted (100 %), overrides the pin and
        # re-pins the conversation, so that it does not switch back later.
        forced = rollback or candidate_percent <= 0 or candidate_percent >= 100
        key = (plan, conversation_id)
        with self._lock:
            pinned = None if forced else self._pins.get(key)
            if pinned is not None:
                self._pins.move_to_end(key)
                return Decision(pinned, Reason.PINNED, decision.bucket)
            self._pins[key] = decision.arm
            self._pins.move_to_end(key)
            if len(self._pins) > self.max_size:
                self._pins.popitem(last=False)
        return decision


__all__ = ["Arm", "ConversationPins", "Decision", "Reason", "bucket", "choose_arm"]
