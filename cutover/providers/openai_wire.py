"""OpenAI's chat-completions wire format, shared by the official-SDK adapter (openai_adapter.py) and the
raw-HTTP async client (async_client.py): the request body for a ChatRequest, and the Attempt / StreamPieces
read back from the JSON answer. Both paths read plain dicts (the adapter its SDK objects' `model_dump()`),
so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cutover.providers.base import Attempt, StreamPiece, effective_max_tokens, effective_temperature
from cutover.providers.errors import ErrorKind, ProviderError, parse_retry_after
from cutover.providers.types import ChatRequest, EndpointSpec, FinishReason, Provider, ToolCall

_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
}


def chat_body(endpoint: EndpointSpec, request: ChatRequest) -> dict[str, Any]:
    """The chat-completions request body (without `stream`) for `request` sent to `endpoint`."""
    messages: list[dict[str, Any]] = []
    system = request.system_prompt()
    if system:
        messages.append({"role": "system", "content": system})
    messages += [{"role": m.role, "content": m.content} for m in request.turns()]
    body: dict[str, Any] = {"model": endpoint.model, "messages": messages}
    max_tokens = effective_max_tokens(request, endpoint)
    if max_tokens is not None:
        # OpenAI itself wants max_completion_tokens (reasoning models refuse max_tokens);
        # compatible servers (vLLM, Ollama, gateways) mostly only know max_tokens.
        key = "max_tokens" if endpoint.provider == Provider.OPENAI_COMPATIBLE else "max_completion_tokens"
        body[key] = max_tokens
    temperature = effective_temperature(request, endpoint)
    if temperature is not None:
        body["temperature"] = temperature
    if request.stop:
        body["stop"] = list(request.stop)
    if request.response_format == "json":
        body["response_format"] = {"type": "json_object"}
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": dict(t.parameters)}}
            for t in request.tools
        ]
    return body


def finish_reason(reason: str | None, tool_calls: Any) -> FinishReason:
    if reason is None:
        return FinishReason.TOOL_CALLS if tool_calls else FinishReason.STOP
    return _FINISH.get(reason, FinishReason.STOP)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """OpenAI's `retry-after-ms` (more precise) or the standard `retry-after`."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        seconds = parse_retry_after(milliseconds)
        return seconds / 1000 if seconds is not None else None
    return parse_retry_after(headers.get("retry-after"))


def _error(endpoint: EndpointSpec, kind: ErrorKind, message: str, request_id: str | None) -> ProviderError:
    return ProviderError(kind, message, provider=endpoint.provider.value, model=endpoint.model,
                         request_id=request_id)


def attempt_from_body(endpoint: EndpointSpec, body: Mapping[str, Any], request_id: str | None) -> Attempt:
    """The Attempt in a chat.completion body; raises ProviderError for an empty or filtered answer."""
    choices = body.get("choices") or ()
    if not choices:  # seen from compatible servers that filtered or failed silently
        raise _error(endpoint, ErrorKind.SERVER_ERROR, "the response has no choices", request_id)
    choice = choices[0]
    message = choice.get("message") or {}
    tool_calls = tuple(
        ToolCall(id=call.get("id") or "", name=call["function"].get("name") or "",
                 arguments=call["function"].get("arguments") or "")
        for call in (message.get("tool_calls") or ())
        if call.get("function") is not None
    )
    finish = finish_reason(choice.get("finish_reason"), tool_calls)
    if finish == FinishReason.CONTENT_FILTER and not (message.get("content") or tool_calls):
        # Filtered before anything was written: a blocked request, reported as the error it is.
        raise _error(endpoint, ErrorKind.CONTENT_FILTER, "the response was filtered", request_id)
    usage = body.get("usage") or {}
    return Attempt(
        text=message.get("content") or "",
        finish_reason=finish,
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        request_id=request_id,
        tool_calls=tool_calls,
        raw=body,
    )


class ChunkReader:
    """Turns one streamed answer's chat.completion.chunk bodies into StreamPieces. Tool calls arrive in
    fragments keyed by index; they are delivered whole with the finish reason."""

    def __init__(self, endpoint: EndpointSpec, request_id: str | None) -> None:
        self.endpoint = endpoint
        self.request_id = request_id
        self._calls: dict[int, dict[str, str]] = {}
        self._produced = False

    def piece(self, chunk: Mapping[str, Any]) -> StreamPiece:
        usage = chunk.get("usage")
        finish = None
        text = ""
        choices = chunk.get("choices") or ()
        if choices:
            choice = choices[0]
            delta = choice.get("delta") or {}
            text = delta.get("content") or ""
            for fragment in delta.get("tool_calls") or ():
                call = self._calls.setdefault(fragment.get("index", 0), {"id": "", "name": "", "arguments": ""})
                call["id"] = fragment.get("id") or call["id"]
                function = fragment.get("function")
                if function is not None:
                    call["name"] += function.get("name") or ""
                    call["arguments"] += function.get("arguments") or ""
            self._produced = self._produced or bool(text)
            if choice.get("finish_reason"):
                finish = finish_reason(choice["finish_reason"], self._calls)
                if finish == FinishReason.CONTENT_FILTER and not (self._produced or self._calls):
                    raise _error(self.endpoint, ErrorKind.CONTENT_FILTER, "the response was filtered",
                                 self.request_id)
        return StreamPiece(
            text=text,
            finish_reason=finish,
            tool_calls=tuple(ToolCall(**c) for c in self._calls.values()) if finish else (),
            input_tokens=usage.get("prompt_tokens") if usage else None,
            output_tokens=usage.get("completion_tokens") if usage else None,
            request_id=self.request_id,
            raw=chunk,
        )
