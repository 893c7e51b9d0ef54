"""Trimming a conversation to the target model's window, with an optional summary of what was dropped."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cutover.providers.context_window import (
    SUMMARY_HEADING,
    conversation_tokens,
    estimate_tokens,
    fit_to_window,
    model_summarizer,
)
from cutover.providers.errors import ErrorKind, ProviderError
from cutover.providers.types import ChatRequest, Completion, EndpointSpec, FinishReason, Message

SYSTEM = "You are the support assistant of Acme Telecom. Be concise and polite."


def support_chat(turn_pairs: int) -> ChatRequest:
    """A long support conversation: each user turn ~50 tokens, each answer ~60 tokens."""
    messages: list[Message] = []
    for i in range(turn_pairs):
        messages.append(Message("user", f"Turn {i}: my router keeps dropping the connection every evening "
                                        f"around eight, and restarting it only helps for an hour or so. " * 2))
        messages.append(Message("assistant", f"Answer {i}: please check the firmware version in the admin page "
                                             f"and tell me whether the WAN light blinks when it drops, and "
                                             f"whether other devices lose the connection too. " * 2))
    messages.append(Message("user", "It is firmware 2.1.4 and yes, the WAN light blinks. What now?"))
    return ChatRequest(system=SYSTEM, messages=tuple(messages), max_tokens=500)


def test_conversation_that_fits__returned_unchanged():
    request = support_chat(2)
    fitted = fit_to_window(request, context_window=128_000)
    assert fitted.request is request and not fitted.trimmed
    assert fitted.tokens_before == fitted.tokens_after == conversation_tokens(request)


def test_long_conversation__keeps_system_prompt_and_most_recent_turns_within_the_window():
    request = support_chat(30)
    window = 2_000

    fitted = fit_to_window(request, context_window=window)

    assert fitted.trimmed
    assert fitted.request.system == SYSTEM
    assert fitted.request.messages[-1] == request.messages[-1], "the newest turn is always kept"
    assert fitted.request.messages == request.messages[-len(fitted.request.messages):], "a suffix, in order"
    assert fitted.tokens_after + request.max_tokens <= window
    assert fitted.dropped + fitted.request.messages == request.messages
    assert fitted.tokens_before > window


def test_trimmed_conversation__starts_with_a_user_turn():
    request = support_chat(30)
    for window in range(900, 2_500, 37):
        fitted = fit_to_window(request, context_window=window)
        assert fitted.request.messages[0].role == "user"


def test_room_for_the_answer__reserved_from_max_tokens_or_as_asked():
    request = support_chat(30)
    default = fit_to_window(request, context_window=3_000)
    bigger_reserve = fit_to_window(request, context_window=3_000, reserve_output_tokens=1_500)
    assert len(bigger_reserve.request.messages) < len(default.request.messages)


def test_last_turn_alone_too_long__context_length_exceeded():
    request = ChatRequest(system=SYSTEM, messages=(Message("user", "x" * 40_000),))
    with pytest.raises(ProviderError) as raised:
        fit_to_window(request, context_window=4_000)
    assert raised.value.kind == ErrorKind.CONTEXT_LENGTH_EXCEEDED


def test_with_a_summarizer__dropped_turns_replaced_by_a_summary_in_the_system_prompt():
    request = support_chat(30)
    seen: list[Sequence[Message]] = []

    def summarize(dropped: Sequence[Message]) -> str:
        seen.append(dropped)
        return "The user's router drops every evening; firmware and WAN light were asked about."

    fitted = fit_to_window(request, context_window=2_500, summarize=summarize, summary_budget_tokens=200)

    assert seen == [fitted.dropped]
    assert fitted.request.system.startswith(SYSTEM)
    assert f"{SUMMARY_HEADING}\nThe user's router drops every evening" in fitted.request.system
    assert fitted.summary.startswith("The user's router")
    assert fitted.tokens_after + request.max_tokens <= 2_500


def test_summary_longer_than_its_budget__clipped_so_the_window_still_holds():
    request = support_chat(30)
    fitted = fit_to_window(request, context_window=2_500, summarize=lambda dropped: "blah " * 5_000,
                           summary_budget_tokens=100)
    assert estimate_tokens(fitted.summary) <= 100
    assert fitted.tokens_after + request.max_tokens <= 2_500


def test_custom_token_counter__used_for_every_decision():
    request = support_chat(5)
    one_token_per_word = lambda text: len(text.split())  # noqa: E731
    fitted = fit_to_window(request, context_window=700, count_tokens=one_token_per_word)
    assert fitted.tokens_after == conversation_tokens(fitted.request, one_token_per_word)
    assert fitted.tokens_after + request.max_tokens <= 700


def test_model_summarizer__asks_the_given_model_with_the_transcript():
    endpoint = EndpointSpec(provider="openai", model="gpt-4o-mini", api_key_env="X")
    calls: list[tuple[EndpointSpec, ChatRequest]] = []

    def fake_complete(endpoint: EndpointSpec, request: ChatRequest) -> Completion:
        calls.append((endpoint, request))
        return Completion("Router drops nightly.", FinishReason.STOP, 10, 4, 1.0, "openai", endpoint.model)

    summarize = model_summarizer(endpoint, max_tokens=200, complete=fake_complete)
    summary = summarize([Message("user", "My router drops."), Message("assistant", "Which firmware?")])

    assert summary == "Router drops nightly."
    (called_endpoint, sent), = calls
    assert called_endpoint is endpoint and sent.max_tokens == 200
    assert "User: My router drops.\nAssistant: Which firmware?" in sent.messages[0].content
