"""The provider-neutral request and result types every adapter maps to and from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
ResponseFormat = Literal["text", "json"]


class Provider(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OPENAI_COMPATIBLE = "openai_compatible"


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # A read-only view so that a frozen dataclass is frozen all the way down for the common case.
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; `parameters` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it

    def parsed_arguments(self) -> Any:
        return json.loads(self.arguments or "{}")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat call, whichever provider answers it.

    `system` is the system prompt; `messages` holds the user/assistant turns (a leading "system"
    message is also accepted and merged into the system prompt by the adapters).
    `max_tokens`/`temperature` left as None fall back to the endpoint's default params.
    `timeout` is in seconds and bounds one attempt, not the whole retry sequence.
    """

    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat = "text"
    tools: tuple[Tool, ...] = ()
    timeout: float | None = None

    def __post_init__(self) -> None:
        # Accept lists for convenience but keep the stored value immutable.
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "tools", tuple(self.tools))

    def system_prompt(self) -> str | None:
        """The system prompt with any system-role messages folded in, in order."""
        parts = [self.system] if self.system else []
        parts += [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    def turns(self) -> tuple[Message, ...]:
        """The conversation without system-role messages."""
        return tuple(m for m in self.messages if m.role != "system")


@dataclass(frozen=True, slots=True)
class Completion:
    """One model answer, normalised across providers.

    Latency and time to first token are in milliseconds; `ttft_ms` is set only for streamed calls.
    `retries` counts the attempts that failed before this one succeeded.
    """

    text: str
    finish_reason: FinishReason
    input_tokens: int
    output_tokens: int
    latency_ms: float
    provider: str
    model: str
    ttft_ms: float | None = None
    request_id: str | None = None
    cost_usd: float = 0.0
    retries: int = 0
    retry_delays: tuple[float, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    raw: Any = None


@dataclass(frozen=True, slots=True, eq=True)
class EndpointSpec:
    """A model behind a provider, as the control plane stores it (never the key, only its variable name)."""

    provider: Provider
    model: str
    api_key_env: str
    base_url: str | None = None
    input_price_per_mtok: float = 0.0
    output_price_per_mtok: float = 0.0
    context_window: int | None = None
    default_params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider", Provider(self.provider))
        object.__setattr__(self, "default_params", _frozen_mapping(self.default_params))

    def __hash__(self) -> int:
        # default_params is a mapping, which does not hash; its canonical JSON does.
        params = json.dumps(dict(self.default_params), sort_keys=True, default=str)
        return hash((self.provider, self.model, self.api_key_env, self.base_url, self.input_price_per_mtok,
                     self.output_price_per_mtok, self.context_window, params, self.name))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EndpointSpec:
        """Build from the endpoint JSON shape of the API and the SDK config document."""
        known = {
            "provider", "model", "api_key_env", "base_url", "input_price_per_mtok",
            "output_price_per_mtok", "context_window", "default_params", "name",
        }
        values = {k: v for k, v in data.items() if k in known}
        if "params" in data and "default_params" not in values:
            values["default_params"] = data["params"]
        values.setdefault("api_key_env", _default_key_env(str(data["provider"])))
        return cls(**values)


def _default_key_env(provider: str) -> str:
    return {
        Provider.OPENAI: "OPENAI_API_KEY",
        Provider.OPENAI_COMPATIBLE: "OPENAI_API_KEY",
        Provider.ANTHROPIC: "ANTHROPIC_API_KEY",
        Provider.GEMINI: "GEMINI_API_KEY",
    }[Provider(provider)]


def user(content: str) -> Message:
    return Message("user", content)


def assistant(content: str) -> Message:
    return Message("assistant", content)
