"""Gemini's generateContent through the official `google-genai` SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from cutover.providers.base import (
    Attempt,
    ClientCache,
    StreamPiece,
    effective_max_tokens,
    effective_temperature,
    effective_timeout,
    header,
    read_api_key,
)
from cutover.providers.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after
from cutover.providers.types import ChatRequest, EndpointSpec, FinishReason, ToolCall

try:  # the SDK talks through httpx2 when it is installed, else httpx; a timeout may come from either
    import httpx2

    _TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
    _TRANSPORT: tuple[type[BaseException], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:  # pragma: no cover - depends on the installed SDK
    _TIMEOUTS, _TRANSPORT = (httpx.TimeoutException,), (httpx.TransportError,)

_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}


class GeminiAdapter:
    def __init__(self, endpoint: EndpointSpec) -> None:
        self.endpoint = endpoint
        self._clients = ClientCache()

    def _client(self) -> genai.Client:
        def build(key: str) -> genai.Client:
            # No retry_options: the SDK then makes exactly one attempt, leaving retries to us.
            options = genai_types.HttpOptions(base_url=self.endpoint.base_url) if self.endpoint.base_url else None
            return genai.Client(api_key=key, http_options=options)

        return self._clients.get(read_api_key(self.endpoint), build)

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        contents = [
            genai_types.Content(role="model" if m.role == "assistant" else "user",
                                parts=[genai_types.Part(text=m.content)])
            for m in request.turns()
        ]
        config: dict[str, Any] = {
            "http_options": genai_types.HttpOptions(timeout=int(effective_timeout(request, self.endpoint) * 1000)),
            # Declared functions are returned to us as calls, never executed by the SDK.
            "automatic_function_calling": genai_types.AutomaticFunctionCallingConfig(disable=True),
        }
        system = request.system_prompt()
        if system:
            config["system_instruction"] = system
        max_tokens = effective_max_tokens(request, self.endpoint)
        if max_tokens is not None:
            config["max_output_tokens"] = max_tokens
        temperature = effective_temperature(request, self.endpoint)
        if temperature is not None:
            config["temperature"] = temperature
        if request.stop:
            config["stop_sequences"] = list(request.stop)
        if request.response_format == "json":
            config["response_mime_type"] = "application/json"
        if request.tools:
            config["tools"] = [genai_types.Tool(function_declarations=[
                genai_types.FunctionDeclaration(name=t.name, description=t.description,
                                                parameters_json_schema=dict(t.parameters))
                for t in request.tools
            ])]
        return {"model": self.endpoint.model, "contents": contents,
                "config": genai_types.GenerateContentConfig(**config)}

    def create(self, request: ChatRequest) -> Attempt:
        with self._translated_errors():
            response = self._client().models.generate_content(**self._arguments(request))
        piece = self._piece(response, final=True)
        return Attempt(
            text=piece.text,
            finish_reason=piece.finish_reason or FinishReason.STOP,
            input_tokens=piece.input_tokens or 0,
            output_tokens=piece.output_tokens or 0,
            request_id=piece.request_id,
            tool_calls=piece.tool_calls,
            raw=piece.raw,
        )

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]:
        produced = False
        with self._translated_errors():
            for response in self._client().models.generate_content_stream(**self._arguments(request)):
                piece = self._piece(response, final=False, produced=produced)
                produced = produced or bool(piece.text or piece.tool_calls)
                yield piece

    def _piece(self, response: genai_types.GenerateContentResponse, *, final: bool, produced: bool = False
               ) -> StreamPiece:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise self._error(ErrorKind.CONTENT_FILTER, f"prompt blocked: {_name(feedback.block_reason)}",
                              request_id=response.response_id)
        candidate = response.candidates[0] if response.candidates else None
        parts = (candidate.content.parts or []) if candidate and candidate.content else []
        text = "".join(p.text for p in parts if p.text and not p.thought)
        tool_calls = tuple(
            ToolCall(id=p.function_call.id or f"call_{i}", name=p.function_call.name or "",
                     arguments=json.dumps(p.function_call.args or {}))
            for i, p in enumerate(parts) if p.function_call is not None
        )
        finish_name = _name(candidate.finish_reason) if candidate and candidate.finish_reason else None
        finish = None
        if finish_name is not None or final:
            finish = _finish(finish_name, bool(tool_calls))
            if finish == FinishReason.CONTENT_FILTER and not (text or tool_calls or produced):
                raise self._error(ErrorKind.CONTENT_FILTER, f"response blocked: {finish_name}",
                                  request_id=response.response_id)
        usage = response.usage_metadata
        return StreamPiece(
            text=text,
            tool_calls=tool_calls,
            finish_reason=finish,
            input_tokens=usage.prompt_token_count if usage else None,
            # Thinking tokens are billed as output.
            output_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0))
            if usage and finish is not None else None,
            request_id=response.response_id,
            raw=response.model_dump(mode="json", exclude_none=True),
        )

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except genai_errors.APIError as error:
            details = json.dumps(error.details) if error.details is not None else ""
            raise self._error(
                kind_from_status(error.code, f"{error.message} {details}"),
                error.message or str(error),
                status_code=error.code,
                retry_after=_retry_after(error),
                request_id=header(error.response, "x-request-id"),
            ) from error
        except _TIMEOUTS as error:
            raise self._error(ErrorKind.TIMEOUT, f"request timed out: {error!r}") from error
        except _TRANSPORT as error:
            raise self._error(ErrorKind.SERVER_ERROR, f"connection failed: {error!r}") from error

    def _error(self, kind: ErrorKind, message: str, **facts: Any) -> ProviderError:
        return ProviderError(kind, message, provider=self.endpoint.provider.value, model=self.endpoint.model, **facts)


def _name(value: Any) -> str:
    return getattr(value, "name", None) or str(value)


def _finish(name: str | None, has_tool_calls: bool) -> FinishReason:
    if has_tool_calls:
        return FinishReason.TOOL_CALLS
    if name == "MAX_TOKENS":
        return FinishReason.LENGTH
    if name in _FILTERED:
        return FinishReason.CONTENT_FILTER
    return FinishReason.STOP


def _retry_after(error: genai_errors.APIError) -> float | None:
    from_header = parse_retry_after(header(error.response, "retry-after"))
    if from_header is not None:
        return from_header
    # Gemini puts the wait in a google.rpc.RetryInfo detail: {"retryDelay": "7s"}.
    body = error.details if isinstance(error.details, dict) else {}
    for detail in (body.get("error") or {}).get("details") or ():
        if isinstance(detail, dict) and "retryDelay" in detail:
            return parse_retry_after(detail["retryDelay"])
    return None
