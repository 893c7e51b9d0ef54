"""OpenAI chat completions through the official `openai` SDK; also any OpenAI-compatible base URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai

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
from cutover.providers.types import ChatRequest, EndpointSpec, FinishReason, Provider, ToolCall

_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
}


class OpenAIAdapter:
    def __init__(self, endpoint: EndpointSpec) -> None:
        self.endpoint = endpoint
        self._clients = ClientCache()

    def _client(self) -> openai.OpenAI:
        # max_retries=0: our retry layer is the only one, so reported retries are the real ones.
        return self._clients.get(
            read_api_key(self.endpoint),
            lambda key: openai.OpenAI(api_key=key, base_url=self.endpoint.base_url, max_retries=0),
        )

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        system = request.system_prompt()
        if system:
            messages.append({"role": "system", "content": system})
        messages += [{"role": m.role, "content": m.content} for m in request.turns()]
        params: dict[str, Any] = {"model": self.endpoint.model, "messages": messages,
                                  "timeout": effective_timeout(request, self.endpoint)}
        max_tokens = effective_max_tokens(request, self.endpoint)
        if max_tokens is not None:
            # OpenAI itself wants max_completion_tokens (reasoning models refuse max_tokens);
            # compatible servers (vLLM, Ollama, gateways) mostly only know max_tokens.
            key = "max_tokens" if self.endpoint.provider == Provider.OPENAI_COMPATIBLE else "max_completion_tokens"
            params[key] = max_tokens
        temperature = effective_temperature(request, self.endpoint)
        if temperature is not None:
            params["temperature"] = temperature
        if request.stop:
            params["stop"] = list(request.stop)
        if request.response_format == "json":
            params["response_format"] = {"type": "json_object"}
        if request.tools:
            params["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": dict(t.parameters)}}
                for t in request.tools
            ]
        return params

    def create(self, request: ChatRequest) -> Attempt:
        with self._translated_errors():
            response = self._client().chat.completions.create(**self._params(request))
        if not response.choices:  # seen from compatible servers that filtered or failed silently
            raise self._error(ErrorKind.SERVER_ERROR, "the response has no choices",
                              request_id=getattr(response, "_request_id", None))
        choice = response.choices[0]
        usage = response.usage
        tool_calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
            for c in (choice.message.tool_calls or ())
            if getattr(c, "function", None) is not None
        )
        finish = _finish(choice.finish_reason, tool_calls)
        if finish == FinishReason.CONTENT_FILTER and not (choice.message.content or tool_calls):
            # Filtered before anything was written: a blocked request, reported as the error it is.
            raise self._error(ErrorKind.CONTENT_FILTER, "the response was filtered",
                              request_id=getattr(response, "_request_id", None))
        return Attempt(
            text=choice.message.content or "",
            finish_reason=finish,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            request_id=getattr(response, "_request_id", None),
            tool_calls=tool_calls,
            raw=response.model_dump(),
        )

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]:
        params = self._params(request)
        params["stream_options"] = {"include_usage": True}
        with self._translated_errors():
            stream = self._client().chat.completions.create(**params, stream=True)
        request_id = header(stream.response, "x-request-id")
        calls: dict[int, dict[str, str]] = {}  # tool calls arrive in fragments, keyed by index
        produced = False
        with self._translated_errors(), stream:
            for chunk in stream:
                usage = chunk.usage
                finish = None
                text = ""
                if chunk.choices:
                    choice = chunk.choices[0]
                    text = choice.delta.content or ""
                    for fragment in choice.delta.tool_calls or ():
                        call = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                        call["id"] = fragment.id or call["id"]
                        if fragment.function is not None:
                            call["name"] += fragment.function.name or ""
                            call["arguments"] += fragment.function.arguments or ""
                    produced = produced or bool(text)
                    if choice.finish_reason:
                        finish = _finish(choice.finish_reason, calls)
                        if finish == FinishReason.CONTENT_FILTER and not (produced or calls):
                            raise self._error(ErrorKind.CONTENT_FILTER, "the response was filtered",
                                              request_id=request_id)
                yield StreamPiece(
                    text=text,
                    finish_reason=finish,
                    tool_calls=tuple(ToolCall(**c) for c in calls.values()) if finish else (),
                    input_tokens=usage.prompt_tokens if usage else None,
                    output_tokens=usage.completion_tokens if usage else None,
                    request_id=request_id,
                    raw=chunk.model_dump(),
                )

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except openai.APITimeoutError as error:  # before APIConnectionError: it is a subclass
            raise self._error(ErrorKind.TIMEOUT, str(error)) from error
        except openai.APIConnectionError as error:
            raise self._error(ErrorKind.SERVER_ERROR, f"connection failed: {error}") from error
        except openai.APIStatusError as error:
            description = f"{error.message} {error.code or ''}"
            raise self._error(
                kind_from_status(error.status_code, description),
                error.message,
                status_code=error.status_code,
                retry_after=_retry_after(error.response),
                request_id=error.request_id,
            ) from error

    def _error(self, kind: ErrorKind, message: str, **facts: Any) -> ProviderError:
        return ProviderError(kind, message, provider=self.endpoint.provider.value, model=self.endpoint.model, **facts)


def _finish(reason: str | None, tool_calls: Any) -> FinishReason:
    if reason is None:
        return FinishReason.TOOL_CALLS if tool_calls else FinishReason.STOP
    return _FINISH.get(reason, FinishReason.STOP)


def _retry_after(response: Any) -> float | None:
    milliseconds = header(response, "retry-after-ms")
    if milliseconds is not None:
        seconds = parse_retry_after(milliseconds)
        return seconds / 1000 if seconds is not None else None
    return parse_retry_after(header(response, "retry-after"))
