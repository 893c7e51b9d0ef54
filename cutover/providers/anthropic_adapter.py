"""Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic

from cutover.providers.base import (
    Attempt,
    ClientCache,
    StreamPiece,
    effective_max_tokens,
    effective_timeout,
    header,
    read_api_key,
)
from cutover.providers.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after
from cutover.providers.types import ChatRequest, EndpointSpec, FinishReason, Message, ToolCall

# The Messages API refuses a request without max_tokens; this is used when neither the request nor
# the endpoint's default params give one.
DEFAULT_MAX_TOKENS = 4096

# Claude has no JSON mode; an explicit instruction is the documented way to ask for bare JSON.
JSON_INSTRUCTION = "Respond with a single valid JSON value only: no prose, no code fences."

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}


class AnthropicAdapter:
    def __init__(self, endpoint: EndpointSpec) -> None:
        self.endpoint = endpoint
        self._clients = ClientCache()

    def _client(self) -> anthropic.Anthropic:
        return self._clients.get(
            read_api_key(self.endpoint),
            lambda key: anthropic.Anthropic(api_key=key, base_url=self.endpoint.base_url, max_retries=0),
        )

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        system = request.system_prompt()
        if request.response_format == "json":
            system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
        params: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": _alternating(request.turns()),
            "max_tokens": effective_max_tokens(request, self.endpoint) or DEFAULT_MAX_TOKENS,
            "timeout": effective_timeout(request, self.endpoint),
        }
        if system:
            params["system"] = system  # lifted out of the messages: the API has no system role
        # No temperature: the Messages API of the current SDK (anthropic 2.x) takes no sampling
        # parameters any more, so a temperature is deliberately not sent to Claude.
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in request.tools
            ]
        return params

    def create(self, request: ChatRequest) -> Attempt:
        with self._translated_errors():
            response = self._client().messages.create(**self._params(request))
        text = "".join(block.text for block in response.content if block.type == "text")
        tool_calls = tuple(
            ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input))
            for block in response.content
            if block.type == "tool_use"
        )
        self._raise_if_blocked(response.stop_reason, text, tool_calls, getattr(response, "_request_id", None))
        return Attempt(
            text=text,
            finish_reason=_FINISH.get(response.stop_reason or "", FinishReason.STOP),
            input_tokens=_input_tokens(response.usage),
            output_tokens=response.usage.output_tokens,
            request_id=getattr(response, "_request_id", None),
            tool_calls=tool_calls,
            raw=response.model_dump(),
        )

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]:
        with self._translated_errors():
            stream = self._client().messages.create(**self._params(request), stream=True)
        request_id = header(stream.response, "request-id")
        tools: dict[int, dict[str, str]] = {}
        produced_text = False
        with self._translated_errors(), stream:
            for event in stream:
                raw = event.model_dump()
                if event.type == "message_start":
                    yield StreamPiece(input_tokens=_input_tokens(event.message.usage), request_id=request_id, raw=raw)
                elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    tools[event.index] = {"id": block.id, "name": block.name, "arguments": ""}
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    produced_text = produced_text or bool(event.delta.text)
                    yield StreamPiece(text=event.delta.text, raw=raw)
                elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    tools[event.index]["arguments"] += event.delta.partial_json
                elif event.type == "message_delta":
                    calls = tuple(ToolCall(**call) for call in tools.values())
                    stop_reason = event.delta.stop_reason
                    self._raise_if_blocked(stop_reason, "x" if produced_text else "", calls, request_id)
                    yield StreamPiece(
                        finish_reason=_FINISH.get(stop_reason or "", FinishReason.STOP),
                        output_tokens=event.usage.output_tokens,
                        tool_calls=calls,
                        raw=raw,
                    )

    def _raise_if_blocked(self, stop_reason: str | None, text: str, tool_calls: tuple[ToolCall, ...],
                          request_id: str | None) -> None:
        # A refusal with no output at all is a blocked prompt: an error, as other providers report it.
        # With partial output it is an answer cut by the filter: finish_reason content_filter.
        if stop_reason == "refusal" and not text and not tool_calls:
            raise self._error(ErrorKind.CONTENT_FILTER, "the model refused the request", request_id=request_id)

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except anthropic.APITimeoutError as error:
            raise self._error(ErrorKind.TIMEOUT, str(error)) from error
        except anthropic.APIConnectionError as error:
            raise self._error(ErrorKind.SERVER_ERROR, f"connection failed: {error}") from error
        except anthropic.APIStatusError as error:
            message = error.api_message or str(error)
            raise self._error(
                kind_from_status(error.status_code, message),
                message,
                status_code=error.status_code,
                retry_after=parse_retry_after(header(error.response, "retry-after")),
                request_id=error.request_id,
            ) from error

    def _error(self, kind: ErrorKind, message: str, **facts: Any) -> ProviderError:
        return ProviderError(kind, message, provider=self.endpoint.provider.value, model=self.endpoint.model, **facts)


def _input_tokens(usage: Any) -> int:
    # Cached prompt tokens are reported apart from input_tokens; all of them were sent.
    return (
        (usage.input_tokens or 0)
        + (getattr(usage, "cache_creation_input_tokens", 0) or 0)
        + (getattr(usage, "cache_read_input_tokens", 0) or 0)
    )


def _alternating(turns: tuple[Message, ...]) -> list[dict[str, str]]:
    """Merge consecutive turns of one role: the Messages API wants user and assistant to alternate."""
    merged: list[dict[str, str]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn.role:
            merged[-1]["content"] += "\n\n" + turn.content
        else:
            merged.append({"role": turn.role, "content": turn.content})
    return merged
