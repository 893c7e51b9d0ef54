"""Fit a conversation into the target model's context window (the chat-history migration).

Moving a conversation to a model with a smaller window must not fail the user's next turn: keep the
system prompt and the most recent turns, drop the oldest ones, and optionally replace what was
dropped by a summary written by a model of our choice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cutover.providers.errors import ErrorKind, ProviderError
from cutover.providers.types import ChatRequest, EndpointSpec, Message

TokenCounter = Callable[[str], int]
Summarizer = Callable[[Sequence[Message]], str]

# Role markers and separators cost a few tokens per message in every provider's chat format.
MESSAGE_OVERHEAD_TOKENS = 4
SUMMARY_HEADING = "Summary of the earlier conversation:"


def estimate_tokens(text: str) -> int:
    """About four characters per token for English text — close to the providers' tokenizers,
    which are not available offline. Pass the real counter where one exists."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class FittedConversation:
    request: ChatRequest
    dropped: tuple[Message, ...]
    summary: str | None
    tokens_before: int
    tokens_after: int

    @property
    def trimmed(self) -> bool:
        return bool(self.dropped)


def conversation_tokens(request: ChatRequest, count_tokens: TokenCounter = estimate_tokens) -> int:
    system = request.system_prompt()
    total = count_tokens(system) + MESSAGE_OVERHEAD_TOKENS if system else 0
    return total + sum(count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in request.turns())


def fit_to_window(
    request: ChatRequest,
    *,
    context_window: int,
    reserve_output_tokens: int | None = None,
    count_tokens: TokenCounter = estimate_tokens,
    summarize: Summarizer | None = None,
    summary_budget_tokens: int = 512,
) -> FittedConversation:
    """The request trimmed to fit `context_window` with room left for the answer.

    The room kept for the answer is `reserve_output_tokens`, by default the request's max_tokens.
    The kept turns always start with a user turn (Anthropic and Gemini require it). Raises
    ProviderError(context_length_exceeded) when even the system prompt and the last turn do not fit.
    """
    reserve = reserve_output_tokens if reserve_output_tokens is not None else (request.max_tokens or 0)
    budget = context_window - reserve
    before = conversation_tokens(request, count_tokens)
    if before <= budget:
        return FittedConversation(request, (), None, before, before)

    system = request.system_prompt()
    turns = list(request.turns())
    fixed = count_tokens(system) + MESSAGE_OVERHEAD_TOKENS if system else 0
    if summarize is not None:
        fixed += summary_budget_tokens + count_tokens(SUMMARY_HEADING)
    kept = _newest_turns_within(turns, budget - fixed, count_tokens)
    if not kept:
        raise ProviderError(
            ErrorKind.CONTEXT_LENGTH_EXCEEDED,
            f"the system prompt and the last turn alone need more than {budget} tokens",
        )
    dropped = tuple(turns[: len(turns) - len(kept)])

    summary = None
    if summarize is not None and dropped:
        summary = _clip(summarize(dropped).strip(), summary_budget_tokens, count_tokens)
        note = f"{SUMMARY_HEADING}\n{summary}"
        system = f"{system}\n\n{note}" if system else note
    fitted = dataclasses.replace(request, system=system, messages=tuple(kept))
    return FittedConversation(fitted, dropped, summary, before, conversation_tokens(fitted, count_tokens))


def _newest_turns_within(turns: list[Message], budget: int, count_tokens: TokenCounter) -> list[Message]:
    kept: list[Message] = []
    used = 0
    for turn in reversed(turns):
        cost = count_tokens(turn.content) + MESSAGE_OVERHEAD_TOKENS
        if used + cost > budget:
            break
        kept.insert(0, turn)
        used += cost
    while kept and kept[0].role != "user":
        kept.pop(0)  # an assistant turn whose question was dropped would only confuse the model
    return kept


def _clip(text: str, budget: int, count_tokens: TokenCounter) -> str:
    # A summariser may ignore its length limit; cut rather than overflow the window.
    while text and count_tokens(text) > budget:
        text = text[: int(len(text) * 0.9)]
    return text


SUMMARY_INSTRUCTIONS = (
    "You summarise the beginning of a conversation between a user and an assistant so that the "
    "assistant can continue it without the full transcript. Keep names, numbers, decisions, open "
    "questions and the user's preferences. Write plain prose, at most {words} words."
)


def model_summarizer(endpoint: EndpointSpec, *, max_tokens: int = 400,
                     complete: Callable[..., object] | None = None) -> Summarizer:
    """A Summarizer whose summary is written by the model behind `endpoint`."""
    from cutover.providers.client import complete as default_complete

    call = complete or default_complete

    def summarize(dropped: Sequence[Message]) -> str:
        transcript = "\n".join(f"{m.role.capitalize()}: {m.content}" for m in dropped)
        request = ChatRequest(
            system=SUMMARY_INSTRUCTIONS.format(words=int(max_tokens * 0.7)),
            messages=(Message("user", f"<transcript>\n{transcript}\n</transcript>"),),
            max_tokens=max_tokens,
            temperature=0.0,
        )
        completion = call(endpoint, request)
        return completion.text  # type: ignore[attr-defined]

    return summarize
