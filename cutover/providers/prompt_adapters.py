"""Prompt adapters: named, versioned rewrites of a base prompt for one model family.

A migration plan names the adapter its candidate uses ("claude-v1"); the SDK applies it to each
request before the call. An adapter never changes once released — a new behaviour is a new version
("claude-v2") — so a plan's results stay reproducible. Applying an adapter twice changes nothing more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from cutover.providers.types import ChatRequest, Message

# Tasks on which explicit step-by-step reasoning measurably helps; others are left alone, since
# the extra reasoning text costs output tokens and latency for nothing on chit-chat or extraction.
REASONING_TASKS = frozenset({"reasoning", "math", "analysis", "planning"})

Transform = Callable[[ChatRequest, str | None], ChatRequest]


@dataclass(frozen=True, slots=True)
class PromptAdapter:
    name: str
    family: str
    version: int
    description: str
    transform: Transform

    def apply(self, request: ChatRequest, *, task: str | None = None) -> ChatRequest:
        return self.transform(request, task)


class UnknownPromptAdapter(KeyError):
    pass


_REGISTRY: dict[str, PromptAdapter] = {}


def register(adapter: PromptAdapter) -> PromptAdapter:
    if adapter.name in _REGISTRY:
        raise ValueError(f"prompt adapter {adapter.name!r} is already registered; release a new version instead")
    _REGISTRY[adapter.name] = adapter
    return adapter


def get_prompt_adapter(name: str) -> PromptAdapter:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownPromptAdapter(f"no prompt adapter {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def prompt_adapter_names() -> list[str]:
    return sorted(_REGISTRY)


def apply_prompt_adapter(name: str | None, request: ChatRequest, *, task: str | None = None) -> ChatRequest:
    """The request as the named adapter rewrites it; no adapter (None) leaves it unchanged."""
    return request if name is None else get_prompt_adapter(name).apply(request, task=task)


# --- building blocks ------------------------------------------------------------------------------


def append_to_last_user_turn(request: ChatRequest, instruction: str) -> ChatRequest:
    messages = list(request.messages)
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            if instruction in messages[index].content:
                return request  # already adapted
            messages[index] = Message("user", f"{messages[index].content.rstrip()}\n\n{instruction}")
            return dataclasses.replace(request, messages=tuple(messages))
    return request


def append_to_system(request: ChatRequest, instruction: str) -> ChatRequest:
    system = request.system or ""
    if instruction in system:
        return request
    return dataclasses.replace(request, system=f"{system.rstrip()}\n\n{instruction}" if system else instruction)


def mentions_json(request: ChatRequest) -> bool:
    return any("json" in text.lower() for text in [request.system or "", *(m.content for m in request.messages)])


# --- released adapters ------------------------------------------------------------------------------

STEP_BY_STEP_WITH_TAGS = (
    "Think through the problem step by step inside <thinking> tags. "
    "Then give only your final answer inside <answer> tags."
)
JSON_IN_ANSWER_TAGS = "When you give your final answer as JSON, put only the JSON inside the <answer> tags."
GPT_JSON_GUARD = "Respond in JSON."
GPT_STEP_BY_STEP = (
    "Let's work this out step by step before answering. Finish with the final answer alone inside <answer> tags."
)
GEMINI_RAW_JSON = "Output raw JSON only, without Markdown code fences."


def _claude_v1(request: ChatRequest, task: str | None) -> ChatRequest:
    # Claude follows XML-tag structure closely; reasoning goes in tags so the normaliser can lift the
    # answer out of <answer> and the comparison with the baseline sees the answer, not the reasoning.
    if task in REASONING_TASKS:
        request = append_to_last_user_turn(request, STEP_BY_STEP_WITH_TAGS)
        if request.response_format == "json":
            request = append_to_system(request, JSON_IN_ANSWER_TAGS)
    return request


def _gpt_v1(request: ChatRequest, task: str | None) -> ChatRequest:
    # OpenAI's JSON mode answers 400 unless the word "JSON" appears in the messages: prompts written
    # for another provider often lack it.
    if request.response_format == "json" and not mentions_json(request):
        request = append_to_system(request, GPT_JSON_GUARD)
    if task in REASONING_TASKS:
        request = append_to_last_user_turn(request, GPT_STEP_BY_STEP)
    return request


def _gemini_v1(request: ChatRequest, task: str | None) -> ChatRequest:
    # Gemini tends to wrap JSON in ```json fences even in JSON mode when the prompt shows fenced examples.
    if request.response_format == "json":
        request = append_to_system(request, GEMINI_RAW_JSON)
    if task in REASONING_TASKS:
        request = append_to_last_user_turn(request, STEP_BY_STEP_WITH_TAGS)
    return request


CLAUDE_V1 = register(PromptAdapter(
    "claude-v1", "claude", 1,
    "Reasoning tasks: step-by-step thinking in <thinking> tags, final answer (JSON if asked) in <answer> tags.",
    _claude_v1,
))
GPT_V1 = register(PromptAdapter(
    "gpt-v1", "gpt", 1,
    "JSON requests mention JSON (required by JSON mode); reasoning tasks: step by step, answer in <answer> tags.",
    _gpt_v1,
))
GEMINI_V1 = register(PromptAdapter(
    "gemini-v1", "gemini", 1,
    "JSON requests: raw JSON without code fences; reasoning tasks: step by step, answer in <answer> tags.",
    _gemini_v1,
))
