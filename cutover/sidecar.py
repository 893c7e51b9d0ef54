"""The sidecar: OpenAI's chat-completions API on loopback, routed by the current split.

    cutover sidecar --control-plane URL --sdk-key KEY --port N

`POST /v1/chat/completions` (plain and `stream: true`) and `GET /v1/models`. The request's `model` names
the plan key (or the `X-Cutover-Plan` header does); the routing key is the request's `user` field or the
`X-Cutover-Routing-Key` header. Each call is routed, translated to the chosen arm's provider and back,
reported and mirrored exactly as the SDK does (it is the SDK's CutoverClient underneath). The answer's
`model` is the model that answered; the `X-Cutover-Arm` header says which arm.

A small asyncio HTTP/1.1 server (keep-alive, chunked server-sent events) rather than a framework: the
sidecar sits on every LLM call's path, so it must add as little as possible. Everything runs on one event
loop: arms whose provider speaks OpenAI's wire format are called over a pooled keep-alive HTTP client
(cutover/providers/async_client.py), not the official SDK in a thread; Anthropic and Gemini arms keep their
official SDKs, in the SDK client's thread pool. Events and shadow samples are queue puts; background
threads send them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutover.providers.errors import ErrorKind, ProviderError
from cutover.providers.types import ChatRequest, Completion, Message, Tool
from cutover.sdk.client import AsyncRoutedStream, CutoverClient, PlanNotConfigured, RoutedCompletion

logger = logging.getLogger("cutover.sidecar")

MAX_BODY_BYTES = 16 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}
_KIND_STATUS = {ErrorKind.RATE_LIMITED: 429, ErrorKind.TIMEOUT: 504, ErrorKind.SERVER_ERROR: 502,
                ErrorKind.BAD_REQUEST: 400, ErrorKind.AUTH: 502, ErrorKind.CONTEXT_LENGTH_EXCEEDED: 400,
                ErrorKind.CONTENT_FILTER: 400}
_KIND_TYPE = {ErrorKind.RATE_LIMITED: "rate_limit_error", ErrorKind.TIMEOUT: "timeout",
              ErrorKind.SERVER_ERROR: "api_error", ErrorKind.BAD_REQUEST: "invalid_request_error",
              ErrorKind.AUTH: "api_error", ErrorKind.CONTEXT_LENGTH_EXCEEDED: "invalid_request_error",
              ErrorKind.CONTENT_FILTER: "invalid_request_error"}


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, *, status: int = 400,
                 code: str | None = None, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code, self.type = message, param, status, code, type_


@dataclass
class HttpResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None  # server-sent events, sent chunked


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# --- OpenAI request → ChatRequest -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedCall:
    plan: str
    request: ChatRequest
    stream: bool
    include_usage: bool
    routing_key: str | None
    conversation_id: str | None
    segment: str | None
    task: str | None
    safe_to_repeat: bool


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadRequest("only text content parts are supported", f"{where}.content[{index}]")
            parts.append(part["text"])
        return "".join(parts)
    raise BadRequest("content must be a string or a list of text parts", f"{where}.content")


def parse_chat_request(payload: Any, headers: Mapping[str, str]) -> ParsedCall:
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    plan = headers.get("x-cutover-plan") or payload.get("model")
    if not isinstance(plan, str) or not plan:
        raise BadRequest("model (the plan key) is required", "model")
    raw_messages = payload.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    messages = []
    for index, message in enumerate(raw_messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object", where)
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise BadRequest(f"role {role!r} is not supported by the Cutover sidecar (system, developer, user, "
                             "assistant)", f"{where}.role")
        if message.get("tool_calls"):
            raise BadRequest("assistant tool calls in the history are not supported by the Cutover sidecar",
                             f"{where}.tool_calls")
        messages.append(Message(role, _content_text(message.get("content"), where)))
    if payload.get("n", 1) not in (1, None):
        raise BadRequest("only n=1 is supported", "n")
    max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise BadRequest("max_tokens must be a positive integer", "max_tokens")
    temperature = payload.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or isinstance(temperature, bool)):
        raise BadRequest("temperature must be a number", "temperature")
    stop = payload.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    response_format = payload.get("response_format") or {}
    json_mode = isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")
    tools = []
    for index, tool in enumerate(payload.get("tools") or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest("each tool must be {type: function, function: {name, ...}}", f"tools[{index}]")
        tools.append(Tool(function["name"], function.get("description") or "",
                          function.get("parameters") or {"type": "object", "properties": {}}))
    request = ChatRequest(messages=tuple(messages), max_tokens=max_tokens,
                          temperature=float(temperature) if temperature is not None else None, stop=stops,
                          response_format="json" if json_mode else "text", tools=tuple(tools))
    user = payload.get("user")
    stream_options = payload.get("stream_options") or {}
    return ParsedCall(
        plan=plan, request=request, stream=bool(payload.get("stream")),
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
        routing_key=headers.get("x-cutover-routing-key") or (user if isinstance(user, str) and user else None),
        conversation_id=headers.get("x-cutover-conversation") or None,
        segment=headers.get("x-cutover-segment") or None, task=headers.get("x-cutover-task") or None,
        safe_to_repeat=headers.get("x-cutover-safe-to-repeat", "true").lower() not in ("false", "0", "no"),
    )


# --- Completion → OpenAI response ------------------------------------------------------------------------


def _completion_id(request_id: str) -> str:
    return "chatcmpl-" + request_id.replace("-", "")


def chat_completion_body(result: RoutedCompletion) -> dict[str, Any]:
    completion = result.completion
    message: dict[str, Any] = {"role": "assistant", "content": result.text, "refusal": None}
    if completion.tool_calls:
        message["tool_calls"] = [{"id": call.id, "type": "function",
                                  "function": {"name": call.name, "arguments": call.arguments}}
                                 for call in completion.tool_calls]
        message["content"] = result.text or None
    return {
        "id": _completion_id(result.request_id), "object": "chat.completion", "created": int(time.time()),
        "model": completion.model,
        "choices": [{"index": 0, "message": message, "finish_reason": completion.finish_reason.value,
                     "logprobs": None}],
        "usage": _usage(completion),
    }


def provider_error_response(error: ProviderError) -> HttpResponse:
    status = _KIND_STATUS.get(error.kind, 502)
    headers = {"Retry-After": f"{error.retry_after:g}"} if error.retry_after is not None else {}
    return HttpResponse(status, error_body(str(error), _KIND_TYPE.get(error.kind, "api_error"),
                                           code=error.kind.value), headers)


# --- the application ------------------------------------------------------------------------------------


class SidecarApp:
    """Turns one HTTP request into one HttpResponse; routing, calls, events and shadow samples are the SDK
    client's (`acomplete` / `astream`), on this event loop."""

    def __init__(self, client: CutoverClient) -> None:
        self.client = client

    async def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> HttpResponse:
        path = target.partition("?")[0].rstrip("/") or "/"
        try:
            if path in ("/v1/chat/completions", "/chat/completions"):
                if method != "POST":
                    raise BadRequest(f"{method} is not allowed here", status=405)
                return await self._chat(headers, body)
            if path in ("/v1/models", "/models") and method == "GET":
                return self._models()
            if path == "/healthz" and method == "GET":
                return HttpResponse(200, {"ok": True, "config": self.client.config.status(),
                                          "events": _sender_stats(self.client.reporter),
                                          "shadow": _sender_stats(self.client.mirror)})
            raise BadRequest(f"no route for {method} {path}", status=404, code="not_found")
        except BadRequest as error:
            return HttpResponse(error.status, error_body(error.message, error.type, param=error.param,
                                                         code=error.code))
        except Exception:
            logger.exception("cutover sidecar: internal error")
            return HttpResponse(500, error_body("internal error in the Cutover sidecar", "api_error"))

    def _models(self) -> HttpResponse:
        document = self.client.config.document
        keys = sorted(document.plans) if document is not None else sorted(self.client.baselines)
        return HttpResponse(200, {"object": "list", "data": [
            {"id": key, "object": "model", "created": 0, "owned_by": "cutover"} for key in keys]})

    async def _chat(self, headers: Mapping[str, str], body: bytes) -> HttpResponse:
        try:
            payload = json.loads(body)
        except ValueError as error:
            raise BadRequest(f"the body is not JSON: {error}") from None
        call = parse_chat_request(payload, headers)
        options = {"routing_key": call.routing_key, "conversation_id": call.conversation_id,
                   "segment": call.segment, "task": call.task, "safe_to_repeat": call.safe_to_repeat}
        try:
            if call.stream:
                return await self._stream(call, self.client.astream(call.plan, call.request, **options))
            result = await self.client.acomplete(call.plan, call.request, **options)
        except PlanNotConfigured:
            state = self.client.config.state.value
            raise BadRequest(f"The model (plan) {call.plan!r} does not exist in this environment's Cutover "
                             f"config (config {state})", "model", status=404, code="model_not_found") from None
        except ProviderError as error:
            return provider_error_response(error)
        return HttpResponse(200, chat_completion_body(result), _arm_headers(result))

    async def _stream(self, call: ParsedCall, routed: AsyncRoutedStream) -> HttpResponse:
        texts = aiter(routed)
        # Read up to the first text before answering, so that a failure before it (after any fallback) is
        # answered with an error status rather than inside a 200 stream.
        first = await anext(texts, None)
        completion_id = _completion_id(routed.request_id)
        created = int(time.time())
        route = routed.route
        model = route.config.arm(routed.answered).endpoint.model if route.config else route.endpoint.model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
            return _sse(body)

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            try:
                if first is not None:
                    yield chunk({"content": first})
                async for text in texts:
                    yield chunk({"content": text})
            except ProviderError as error:
                yield _sse(error_body(str(error), "api_error", code=error.kind.value))
                return
            except Exception:
                logger.exception("cutover sidecar: streaming failed")
                yield _sse(error_body("internal error in the Cutover sidecar", "api_error"))
                return
            completion = routed.result.completion
            if completion.tool_calls:
                yield chunk({"tool_calls": [
                    {"index": i, "id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments}}
                    for i, c in enumerate(completion.tool_calls)]})
            yield chunk({}, completion.finish_reason.value)
            if call.include_usage:
                yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": _usage(completion)})
            yield b"data: [DONE]\n\n"

        headers = {"X-Cutover-Arm": routed.answered.value, "X-Cutover-Request-Id": routed.request_id}
        if routed.fell_back:
            headers["X-Cutover-Fell-Back"] = "true"
        return HttpResponse(200, None, headers, stream=events())

    async def aclose(self) -> None:
        await self.client.aclose()


def _sse(body: Any) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _usage(completion: Completion) -> dict[str, int]:
    return {"prompt_tokens": completion.input_tokens, "completion_tokens": completion.output_tokens,
            "total_tokens": completion.input_tokens + completion.output_tokens}


def _arm_headers(result: RoutedCompletion) -> dict[str, str]:
    headers = {"X-Cutover-Arm": result.arm.value, "X-Cutover-Request-Id": result.request_id}
    if result.fell_back:
        headers["X-Cutover-Fell-Back"] = "true"
    return headers


def _sender_stats(sender: Any) -> dict[str, int] | None:
    return None if sender is None else dict(vars(sender.stats)) | {"pending": sender.pending}


# --- HTTP/1.1 -------------------------------------------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    # The whole head in one read (not a readline per header): fewer awaits on the hot path.
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return None  # the client closed the connection between requests
        raise BadRequest("incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest("the request head is too large", status=413) from None
    request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    try:
        method, target, _version = request_line.split(" ", 2)
    except ValueError:
        raise BadRequest("malformed request line") from None
    headers: dict[str, str] = {}
    for raw in header_lines:
        name, _, value = raw.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
            if len(body) > MAX_BODY_BYTES:
                raise BadRequest("the body is too large", status=413)
        return method, target, headers, bytes(body)
    length = int(headers.get("content-length") or 0)
    if length > MAX_BODY_BYTES:
        raise BadRequest("the body is too large", status=413)
    body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write(writer: asyncio.StreamWriter, response: HttpResponse, keep_alive: bool) -> None:
    headers = {"Connection": "keep-alive" if keep_alive else "close", **response.headers}
    if response.stream is None:
        body = json.dumps(response.body, separators=(",", ":")).encode()
        headers.update({"Content-Type": "application/json", "Content-Length": str(len(body))})
        writer.write(_head(response.status, headers) + body)
        await writer.drain()
        return
    headers.update({"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                    "Transfer-Encoding": "chunked"})
    writer.write(_head(response.status, headers))
    async for piece in response.stream:
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def serve_connection(handle: Callable[[str, str, dict[str, str], bytes], Awaitable[HttpResponse]],
                           reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                request = await _read_request(reader)
            except BadRequest as error:
                await _write(writer, HttpResponse(error.status, error_body(error.message, error.type)), False)
                return
            if request is None:
                return
            method, target, headers, body = request
            keep_alive = headers.get("connection", "").lower() != "close"
            response = await handle(method, target, headers, body)
            await _write(writer, response, keep_alive)
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Sidecar:
    """The server. `serve()` on your own loop, or `start()`/`stop()` (a thread) and `with Sidecar(...)`."""

    def __init__(self, client: CutoverClient, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.client = client
        self.app = SidecarApp(client)
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    async def serve(self, on_ready: Callable[[Sidecar], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    import socket

                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await serve_connection(self.app.handle, reader, writer)

        self._server = await asyncio.start_server(on_connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        if on_ready is not None:
            on_ready(self)
        try:
            async with self._server:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._server.serve_forever()
        finally:
            await self.app.aclose()

    def start(self) -> Sidecar:
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()), name="cutover-sidecar",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the sidecar did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Sidecar:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
