"""What every adapter provides: one attempt at a call, plain or streamed, with errors already normalised."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from cutover.providers.errors import ErrorKind, ProviderError
from cutover.providers.types import ChatRequest, EndpointSpec, FinishReason, ToolCall

DEFAULT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """The answer of one successful non-streamed attempt, before timing, cost and retries are added."""

    text: str
    finish_reason: FinishReason
    input_tokens: int
    output_tokens: int
    request_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    raw: Any = None


@dataclass(frozen=True, slots=True)
class StreamPiece:
    """One streamed event; any field may be empty. Usage and finish reason usually arrive last."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    request_id: str | None = None
    raw: Any = None


class Adapter(Protocol):
    endpoint: EndpointSpec

    def create(self, request: ChatRequest) -> Attempt:
        """One attempt; raises ProviderError."""
        ...

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]:
        """One streamed attempt; raises ProviderError, possibly only once iterated."""
        ...


def read_api_key(endpoint: EndpointSpec) -> str:
    """The key, read at call time so that a rotated key is picked up without a restart."""
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise ProviderError(
            ErrorKind.AUTH,
            f"environment variable {endpoint.api_key_env} is not set",
            provider=endpoint.provider.value,
            model=endpoint.model,
        )
    return key


def effective_max_tokens(request: ChatRequest, endpoint: EndpointSpec) -> int | None:
    value = request.max_tokens if request.max_tokens is not None else endpoint.default_params.get("max_tokens")
    return int(value) if value is not None else None


def effective_temperature(request: ChatRequest, endpoint: EndpointSpec) -> float | None:
    value = request.temperature if request.temperature is not None else endpoint.default_params.get("temperature")
    return float(value) if value is not None else None


def effective_timeout(request: ChatRequest, endpoint: EndpointSpec) -> float:
    value = request.timeout if request.timeout is not None else endpoint.default_params.get("timeout")
    return float(value) if value is not None else DEFAULT_TIMEOUT_SECONDS


def header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None)
    return headers.get(name) if headers is not None else None


class ClientCache:
    """One SDK client per API key: keeps connection pooling while still honouring a rotated key."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._client: Any = None

    def get(self, key: str, build: Any) -> Any:
        if self._client is None or key != self._key:
            self._key, self._client = key, build(key)
        return self._client
