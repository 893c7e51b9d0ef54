"""The three wire formats: parse a request body into a SimRequest, render answers, errors and streams."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from cutover.simulator.scenario import SimAnswer, SimRequest

Json = dict[str, Any]


def _text_of(content: Any) -> str:
    """Message content is a string or a list of typed parts, depending on the client."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
    if isinstance(content, dict):
        return _text_of(content.get("text", ""))
    return str(content)


def _role(role: str) -> str:
    return "assistant" if role in ("assistant", "model") else "user"


# --- OpenAI chat completions ---------------------------------------------------------------------


def parse_openai(body: Json) -> SimRequest:
    system_parts, turns = [], []
    for message in body.get("messages", []):
        if message.get("role") in ("system", "developer"):
            system_parts.append(_text_of(message.get("content")))
        else:
            turns.append((_role(message.get("role", "user")), _text_of(message.get("content"))))
    stop = body.get("stop") or ()
    return SimRequest(
        model=str(body.get("model", "")),
        system="\n\n".join(system_parts),
        turns=tuple(turns),
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        json_mode=(body.get("response_format") or {}).get("type") in ("json_object", "json_schema"),
        tool_names=tuple(t.get("function", {}).get("name", "") for t in body.get("tools") or ()),
    )


_OPENAI_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def openai_response(answer: SimAnswer, model: str, request_id: str) -> Json:
    message: Json = {"role": "assistant", "content": answer.text or None, "refusal": None}
    if answer.tool_name:
        message["tool_calls"] = [_openai_tool_call(answer, request_id)]
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _OPENAI_FINISH[answer.finish],
                     "logprobs": None}],
        "usage": _openai_usage(answer),
    }


def _openai_tool_call(answer: SimAnswer, request_id: str) -> Json:
    return {"id": f"call_{request_id}", "type": "function",
            "function": {"name": answer.tool_name, "arguments": answer.tool_arguments}}


def _openai_usage(answer: SimAnswer) -> Json:
    return {"prompt_tokens": answer.input_tokens, "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens}


def openai_stream(answer: SimAnswer, model: str, request_id: str, pieces: list[str], include_usage: bool
                  ) -> Iterator[tuple[bool, bytes]]:
    created = int(time.time())

    def chunk(delta: Json, finish: str | None, usage: Json | None = None, choices: bool = True) -> bytes:
        data = {"id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk", "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if choices else [],
                "usage": usage}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    yield False, chunk({"role": "assistant", "content": ""}, None)
    for piece in pieces:
        yield True, chunk({"content": piece}, None)
    if answer.tool_name:
        call = _openai_tool_call(answer, request_id)
        yield True, chunk({"tool_calls": [{"index": 0, **call}]}, None)
    yield False, chunk({}, _OPENAI_FINISH[answer.finish])
    if include_usage:
        yield False, chunk({}, None, usage=_openai_usage(answer), choices=False)
    yield False, b"data: [DONE]\n\n"


_OPENAI_ERRORS = {
    "rate_limited": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    "server_error": (500, "server_error", None, "The server had an error while processing your request."),
    "timeout": (504, "server_error", "timeout", "The server timed out."),
    "bad_request": (400, "invalid_request_error", None, "Invalid request: simulated bad request."),
    "auth": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "context_length_exceeded": (400, "invalid_request_error", "context_length_exceeded",
                                "This model's maximum context length is {window} tokens. "
                                "However, your messages resulted in {tokens} tokens."),
    "content_filter": (400, "invalid_request_error", "content_filter",
                       "The response was filtered due to the prompt triggering the content management policy."),
}


def openai_error(kind: str, **facts: Any) -> tuple[int, Json]:
    status, error_type, code, message = _OPENAI_ERRORS[kind]
    return status, {"error": {"message": message.format(**facts), "type": error_type, "param": None, "code": code}}


# --- Anthropic messages --------------------------------------------------------------------------


def parse_anthropic(body: Json) -> SimRequest:
    return SimRequest(
        model=str(body.get("model", "")),
        system=_text_of(body.get("system")),
        turns=tuple((_role(m.get("role", "user")), _text_of(m.get("content"))) for m in body.get("messages", [])),
        max_tokens=body.get("max_tokens"),
        stop=tuple(body.get("stop_sequences") or ()),
        tool_names=tuple(t.get("name", "") for t in body.get("tools") or ()),
    )


_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def anthropic_response(answer: SimAnswer, model: str, request_id: str, stop_reason: str | None = None) -> Json:
    content: list[Json] = [{"type": "text", "text": answer.text}] if answer.text else []
    if answer.tool_name:
        content.append({"type": "tool_use", "id": f"toolu_{request_id}", "name": answer.tool_name,
                        "input": json.loads(answer.tool_arguments or "{}")})
    return {
        "id": f"msg_{request_id}", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason or _ANTHROPIC_STOP[answer.finish], "stop_sequence": None,
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
    }


def anthropic_stream(answer: SimAnswer, model: str, request_id: str, pieces: list[str],
                     stop_reason: str | None = None) -> Iterator[tuple[bool, bytes]]:
    def event(name: str, data: Json) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    start = anthropic_response(answer, model, request_id)
    start.update(content=[], stop_reason=None, usage={"input_tokens": answer.input_tokens, "output_tokens": 1})
    yield False, event("message_start", {"type": "message_start", "message": start})
    index = 0
    if pieces:
        yield False, event("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}})
        yield False, event("ping", {"type": "ping"})
        for piece in pieces:
            yield True, event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "text_delta", "text": piece}})
        yield False, event("content_block_stop", {"type": "content_block_stop", "index": 0})
        index = 1
    if answer.tool_name:
        yield True, event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": f"toolu_{request_id}", "name": answer.tool_name, "input": {}}})
        yield False, event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
            "type": "input_json_delta", "partial_json": answer.tool_arguments or "{}"}})
        yield False, event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield False, event("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": stop_reason or _ANTHROPIC_STOP[answer.finish],
                                            "stop_sequence": None},
                                  "usage": {"output_tokens": answer.output_tokens}})
    yield False, event("message_stop", {"type": "message_stop"})


_ANTHROPIC_ERRORS = {
    "rate_limited": (429, "rate_limit_error", "Number of requests has exceeded your rate limit."),
    "server_error": (529, "overloaded_error", "Overloaded"),
    "timeout": (504, "timeout_error", "Request timed out."),
    "bad_request": (400, "invalid_request_error", "Simulated invalid request."),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "context_length_exceeded": (400, "invalid_request_error", "prompt is too long: {tokens} tokens > {window} maximum"),
}


def anthropic_error(kind: str, **facts: Any) -> tuple[int, Json]:
    status, error_type, message = _ANTHROPIC_ERRORS[kind]
    return status, {"type": "error", "error": {"type": error_type, "message": message.format(**facts)}}


# --- Gemini generateContent ----------------------------------------------------------------------


def parse_gemini(body: Json, model: str) -> SimRequest:
    system = body.get("systemInstruction") or body.get("system_instruction") or {}
    config = body.get("generationConfig") or body.get("generation_config") or {}
    declarations = [d for tool in body.get("tools") or () for d in
                    (tool.get("functionDeclarations") or tool.get("function_declarations") or ())]
    return SimRequest(
        model=model,
        system=_text_of(system.get("parts")),
        turns=tuple((_role(c.get("role", "user")), _text_of(c.get("parts"))) for c in body.get("contents", [])),
        max_tokens=config.get("maxOutputTokens"),
        stop=tuple(config.get("stopSequences") or ()),
        json_mode=config.get("responseMimeType") == "application/json",
        tool_names=tuple(d.get("name", "") for d in declarations),
    )


_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def _gemini_usage(answer: SimAnswer) -> Json:
    return {"promptTokenCount": answer.input_tokens, "candidatesTokenCount": answer.output_tokens,
            "totalTokenCount": answer.input_tokens + answer.output_tokens}


def gemini_response(answer: SimAnswer, model: str, request_id: str) -> Json:
    parts: list[Json] = [{"text": answer.text}] if answer.text else []
    if answer.tool_name:
        parts.append({"functionCall": {"name": answer.tool_name, "args": json.loads(answer.tool_arguments or "{}")}})
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": _GEMINI_FINISH[answer.finish],
                        "index": 0}],
        "usageMetadata": _gemini_usage(answer), "modelVersion": model, "responseId": request_id,
    }


def gemini_blocked(answer: SimAnswer, model: str, request_id: str) -> Json:
    """A prompt refused by the safety filter: HTTP 200, no candidates, a block reason."""
    return {"promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": answer.input_tokens, "totalTokenCount": answer.input_tokens},
            "modelVersion": model, "responseId": request_id}


def gemini_stream(answer: SimAnswer, model: str, request_id: str, pieces: list[str]) -> Iterator[tuple[bool, bytes]]:
    def chunk(data: Json) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"

    for piece in pieces[:-1]:
        yield True, chunk({"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}],
                     "usageMetadata": {"promptTokenCount": answer.input_tokens},
                     "modelVersion": model, "responseId": request_id})
    last = gemini_response(answer, model, request_id)
    last["candidates"][0]["content"]["parts"] = [p for p in last["candidates"][0]["content"]["parts"]
                                                 if "text" not in p]
    if pieces:
        last["candidates"][0]["content"]["parts"].insert(0, {"text": pieces[-1]})
    yield True, chunk(last)


_GEMINI_ERRORS = {
    "rate_limited": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server_error": (500, "INTERNAL", "An internal error has occurred."),
    "timeout": (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "auth": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    "context_length_exceeded": (400, "INVALID_ARGUMENT", "The input token count ({tokens}) exceeds the maximum "
                                                         "number of tokens allowed ({window})."),
}


def gemini_error(kind: str, retry_after: float | None = None, **facts: Any) -> tuple[int, Json]:
    status, code_name, message = _GEMINI_ERRORS[kind]
    details: list[Json] = []
    if kind == "auth":
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com"})
    if kind == "rate_limited" and retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"})
    return status, {"error": {"code": status, "message": message.format(**facts), "status": code_name,
                              "details": details}}
