"""Prompt adapters: named, versioned rewrites of a base prompt per model family."""

from __future__ import annotations

import pytest

from cutover.providers.prompt_adapters import (
    STEP_BY_STEP_WITH_TAGS,
    UnknownPromptAdapter,
    apply_prompt_adapter,
    get_prompt_adapter,
    prompt_adapter_names,
    register,
)
from cutover.providers.types import ChatRequest, Message

# A prompt written for GPT-4 on a reasoning task: a shipping-cost word problem.
SHIPPING_PROBLEM = ChatRequest(
    system="You are a logistics assistant for an online store.",
    messages=(
        Message("user", "A parcel weighs 3.2 kg. Shipping is $4 for the first kg and $1.50 per started kg "
                        "after that. What does shipping cost?"),
    ),
)
# An extraction prompt whose author relied on Claude following the system prompt, never saying "JSON".
INVOICE_EXTRACTION = ChatRequest(
    system="Extract the invoice number, date and total from the user's text.",
    messages=(Message("user", "Invoice INV-2291 dated 3 March 2026, total due EUR 1,204.50."),),
    response_format="json",
)


def test_registry__names_the_released_adapters():
    assert {"claude-v1", "gpt-v1", "gemini-v1"} <= set(prompt_adapter_names())
    adapter = get_prompt_adapter("claude-v1")
    assert (adapter.family, adapter.version) == ("claude", 1)


def test_unknown_adapter__error_lists_the_known_ones():
    with pytest.raises(UnknownPromptAdapter, match="claude-v1"):
        get_prompt_adapter("claude-v9")


def test_released_name__cannot_be_registered_again():
    with pytest.raises(ValueError, match="already registered"):
        register(get_prompt_adapter("claude-v1"))


def test_claude_v1_on_a_reasoning_task__asks_for_step_by_step_thinking_and_an_answer_tag():
    adapted = apply_prompt_adapter("claude-v1", SHIPPING_PROBLEM, task="reasoning")

    last = adapted.messages[-1].content
    assert last.startswith(SHIPPING_PROBLEM.messages[-1].content)
    assert last.endswith(STEP_BY_STEP_WITH_TAGS)
    assert "<thinking>" in last and "<answer>" in last
    assert adapted.system == SHIPPING_PROBLEM.system


def test_claude_v1_on_a_chat_task__leaves_the_prompt_alone():
    assert apply_prompt_adapter("claude-v1", SHIPPING_PROBLEM, task="chat") == SHIPPING_PROBLEM
    assert apply_prompt_adapter("claude-v1", SHIPPING_PROBLEM) == SHIPPING_PROBLEM


def test_claude_v1_reasoning_with_json_output__json_goes_inside_the_answer_tags():
    problem_as_json = ChatRequest(system=SHIPPING_PROBLEM.system, messages=SHIPPING_PROBLEM.messages,
                                  response_format="json")
    adapted = apply_prompt_adapter("claude-v1", problem_as_json, task="math")
    assert "JSON inside the <answer> tags" in adapted.system


def test_gpt_v1_json_request_that_never_says_json__gets_the_word_json_that_json_mode_requires():
    adapted = apply_prompt_adapter("gpt-v1", INVOICE_EXTRACTION)
    assert "JSON" in adapted.system
    assert adapted.messages == INVOICE_EXTRACTION.messages


def test_gpt_v1_json_request_that_already_says_json__unchanged():
    says_json = ChatRequest(system="Return the fields as JSON.", messages=INVOICE_EXTRACTION.messages,
                            response_format="json")
    assert apply_prompt_adapter("gpt-v1", says_json) == says_json


def test_gemini_v1_json_request__asks_for_raw_json_without_fences():
    adapted = apply_prompt_adapter("gemini-v1", INVOICE_EXTRACTION)
    assert adapted.system.endswith("Output raw JSON only, without Markdown code fences.")


@pytest.mark.parametrize("name", ["claude-v1", "gpt-v1", "gemini-v1"])
def test_every_adapter__applying_twice_is_the_same_as_once(name):
    for request in (SHIPPING_PROBLEM, INVOICE_EXTRACTION):
        once = apply_prompt_adapter(name, request, task="reasoning")
        assert apply_prompt_adapter(name, once, task="reasoning") == once


def test_adapter__targets_the_last_user_turn_of_a_conversation():
    conversation = ChatRequest(messages=(
        Message("user", "I need to ship two parcels."),
        Message("assistant", "Sure, what do they weigh?"),
        Message("user", "3.2 kg and 0.8 kg. Total shipping?"),
    ))
    adapted = apply_prompt_adapter("claude-v1", conversation, task="reasoning")
    assert adapted.messages[:2] == conversation.messages[:2]
    assert adapted.messages[2].content.endswith(STEP_BY_STEP_WITH_TAGS)


def test_no_adapter_named__request_unchanged():
    assert apply_prompt_adapter(None, SHIPPING_PROBLEM, task="reasoning") is SHIPPING_PROBLEM
