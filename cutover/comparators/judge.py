"""LLM-as-judge: a pinned judge model compares two answers to the same request against a rubric.

Pairwise, with the order of the two answers drawn at random for every call (or both orders, averaged), so
a judge's preference for the first (or second) position cancels out over many comparisons instead of
favouring one arm. The verdict is asked for as JSON and parsed strictly; an answer that cannot be parsed is
a Score of 0.5 marked `parsed: False`, never a guess.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from cutover.comparators.base import Score
from cutover.providers.types import ChatRequest, Completion, EndpointSpec, Message

DEFAULT_RUBRIC = (
    "Judge which response better answers the user's request: correct and complete first, then following the "
    "requested format, then concise and clear. Length alone is not quality. If they are equally good, say tie."
)

_SYSTEM = (
    "You are an impartial evaluator comparing two AI assistant responses to the same request.\n"
    "Rubric: {rubric}\n"
    'Reply with a JSON object only: {{"winner": "A" | "B" | "tie", "reason": "<one sentence>"}}.'
)
_USER = (
    "[Request]\n{request}\n\n[Response A]\n{first}\n[End of response A]\n\n"
    "[Response B]\n{second}\n[End of response B]"
)
# Moving model aliases: a judge whose model can change under it makes scores from two weeks incomparable.
_ALIAS = re.compile(r"(^|[-:/])(latest|preview|default|stable)$|^(gpt-4o|gpt-4|claude-3-5-sonnet|gemini-pro)$")
_VERDICT_WORD = re.compile(r'"?winner"?\s*[:=]\s*"?\s*(A|B|tie)\b', re.IGNORECASE)
_BRACKETED = re.compile(r"\[\[\s*(A|B|tie)\s*\]\]", re.IGNORECASE)

Winner = Literal["A", "B", "tie"]
Caller = Callable[[EndpointSpec, ChatRequest], Completion]


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    winner: Winner | None  # None: the judge's answer could not be parsed
    reason: str


def parse_verdict(text: str) -> JudgeVerdict:
    """The verdict in a judge's answer: a JSON object (possibly fenced or amid prose), else `winner: A`
    or `[[A]]`. Anything else is unparsed (winner None)."""
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char != "{":
            continue
        try:
            value, _ = decoder.raw_decode(text, index)
        except ValueError:
            continue
        if isinstance(value, dict) and "winner" in value:
            winner = _winner(str(value["winner"]))
            if winner is not None:
                return JudgeVerdict(winner, str(value.get("reason", "")).strip())
    match = _VERDICT_WORD.search(text) or _BRACKETED.search(text)
    if match:
        return JudgeVerdict(_winner(match.group(1)), text.strip()[:300])
    return JudgeVerdict(None, f"unparseable verdict: {text.strip()[:200]!r}")


def _winner(word: str) -> Winner | None:
    word = word.strip().strip("[]").strip()
    if word.upper() in ("A", "B"):
        return word.upper()  # type: ignore[return-value]
    if word.lower() == "tie":
        return "tie"
    return None


def is_pinned(model: str) -> bool:
    """A dated or versioned model name, not a moving alias like gpt-4o or claude-3-5-sonnet-latest."""
    return not _ALIAS.search(model.strip().lower())


def _default_caller(endpoint: EndpointSpec, request: ChatRequest) -> Completion:
    from cutover.providers.client import complete

    return complete(endpoint, request)


class JudgeComparator:
    """`judge(candidate, reference, request_text=…)` → Score: 1 candidate better, 0.5 tie, 0 reference better.

    `endpoint` is the judge; its model must be pinned (refused otherwise unless `allow_unpinned`).
    `both_orders=True` asks twice, once per order, and averages (twice the cost, no position noise at all).
    `rng` draws the order; pass a seeded random.Random for reproducible runs.
    """

    name = "judge"

    def __init__(self, endpoint: EndpointSpec, *, rubric: str = DEFAULT_RUBRIC, both_orders: bool = False,
                 rng: random.Random | None = None, caller: Caller | None = None, allow_unpinned: bool = False,
                 max_tokens: int = 200) -> None:
        if not allow_unpinned and not is_pinned(endpoint.model):
            raise ValueError(f"the judge model {endpoint.model!r} is a moving alias; pin a dated version")
        self.endpoint = endpoint
        self.rubric = rubric
        self.both_orders = both_orders
        self.rng = rng or random.Random()
        self.caller = caller or _default_caller
        self.max_tokens = max_tokens
        self.cost_usd = 0.0  # what this judge has spent so far (accounted apart from live traffic)

    def request_for(self, request_text: str, first: str, second: str) -> ChatRequest:
        return ChatRequest(
            system=_SYSTEM.format(rubric=self.rubric),
            messages=(Message("user", _USER.format(request=request_text, first=first, second=second)),),
            temperature=0.0, max_tokens=self.max_tokens, response_format="json",
        )

    def _ask(self, request_text: str, candidate: str, reference: str,
             candidate_first: bool) -> tuple[float | None, str]:
        first, second = (candidate, reference) if candidate_first else (reference, candidate)
        completion = self.caller(self.endpoint, self.request_for(request_text, first, second))
        self.cost_usd += completion.cost_usd
        verdict = parse_verdict(completion.text)
        if verdict.winner is None:
            return None, verdict.reason
        if verdict.winner == "tie":
            return 0.5, verdict.reason
        candidate_won = (verdict.winner == "A") == candidate_first
        return (1.0 if candidate_won else 0.0), verdict.reason

    def __call__(self, candidate: str, reference: str, *, request_text: str = "") -> Score:
        orders: Sequence[bool] = (True, False) if self.both_orders else (self.rng.random() < 0.5,)
        results = [self._ask(request_text, candidate, reference, order) for order in orders]
        values = [value for value, _ in results if value is not None]
        details = {"judge_model": self.endpoint.model, "candidate_first": list(orders),
                   "parsed": len(values) == len(results)}
        reasons = "; ".join(reason for _, reason in results if reason)
        if not values:
            return Score(0.5, f"judge {self.endpoint.model}: {reasons}", details)
        value = sum(values) / len(values)
        word = "better" if value > 0.5 else "worse" if value < 0.5 else "as good"
        return Score(value, f"judge {self.endpoint.model}: candidate {word}. {reasons}", details)
