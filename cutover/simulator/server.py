"""The simulator's HTTP server: a small asyncio HTTP/1.1 implementation (keep-alive, chunked streaming).

A hand-rolled server rather than a framework because it only needs a handful of routes and must
not be the bottleneck of a benchmark; everything runs on one event loop, so the scripts, queues
and counters need no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cutover.simulator import wire
from cutover.simulator.scenario import ERROR_KINDS, ModelScript, Scenario, SimAnswer, SimRequest, render_answer

_GEMINI_PATH = re.compile(r"^/(?:v1|v1beta|v1alpha)/(?:models/)?(?P<model>[^:]+):(?P<method>generateContent|"
                          r"streamGenerateContent)$")
_MODEL_ADMIN_PATH = re.compile(r"^/_sim/models/(?P<name>[^/]+?)(?P<outcomes>/outcomes)?$")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            429: "Too Many Requests", 500: "Internal Server Error", 504: "Gateway Timeout", 529: "Overloaded"}
MAX_RECENT_REQUESTS = 1000


@dataclass
class _Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[tuple[bool, bytes]] | None = None
    # Per content piece: how long to wait before sending it (the first one is the time to first token).
    piece_delays: Sequence[float] = ()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the simulator saw it; tests use these to check what an adapter put on the wire."""

    api: str
    model: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]


class SimulatorState:
    """Scripts, forced outcomes and counters. Lives on the event loop; other threads only swap whole values."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.forced: dict[str, deque[str]] = defaultdict(deque)
        self.stats: dict[str, Counter[str]] = defaultdict(Counter)
        self.recent: deque[RecordedRequest] = deque(maxlen=MAX_RECENT_REQUESTS)
        self._ids = itertools.count(1)

    def next_request_id(self) -> str:
        return f"sim{next(self._ids):010d}"

    def set_script(self, model: str, script: ModelScript) -> None:
        self.scenario = Scenario(default=self.scenario.default, models={**self.scenario.models, model: script},
                                 seed=self.scenario.seed, api_key=self.scenario.api_key)

    def next_outcome(self, model: str, script: ModelScript) -> str | None:
        queued = self.forced.get(model)
        if queued:
            outcome = queued.popleft()
            return None if outcome == "ok" else outcome
        return script.errors.draw(self.rng)


class SimulatorApp:
    """Routes one parsed HTTP request to a response."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    async def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Response:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return _Response(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})

        if path.startswith("/_sim"):
            return self._admin(method, path, payload)
        if method == "GET" and path in ("/v1/models", "/models"):
            names = sorted(self.state.scenario.models)
            return _Response(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
        if method != "POST":
            return _Response(405, {"error": {"message": f"{method} not allowed"}})
        if path in ("/v1/chat/completions", "/chat/completions"):
            return await self._chat("openai", wire.parse_openai(payload), payload, headers, query, path)
        if path in ("/v1/messages", "/messages"):
            return await self._chat("anthropic", wire.parse_anthropic(payload), payload, headers, query, path)
        match = _GEMINI_PATH.match(path)
        if match:
            model = match["model"].removeprefix("models/")
            request = wire.parse_gemini(payload, model)
            streaming = match["method"] == "streamGenerateContent"
            return await self._chat("gemini", request, {**payload, "stream": streaming}, headers, query, path)
        return _Response(404, {"error": {"message": f"no route for {path}"}})

    # --- chat ------------------------------------------------------------------------------------

    async def _chat(self, api: str, request: SimRequest, payload: Mapping[str, Any], headers: Mapping[str, str],
                    query: Mapping[str, list[str]], path: str) -> _Response:
        state = self.state
        scenario = state.scenario
        script = scenario.script_for(request.model)
        state.recent.append(RecordedRequest(api, request.model, path, dict(headers), payload))
        request_id = state.next_request_id()
        answer = render_answer(scenario, request, state.rng)

        outcome = state.next_outcome(request.model, script)
        if scenario.api_key is not None and _presented_key(headers, query) != scenario.api_key:
            outcome = "auth"
        elif outcome is None and script.context_window and answer.input_tokens > script.context_window:
            outcome = "context_length_exceeded"
        elif outcome is None and api == "anthropic" and not payload.get("max_tokens"):
            outcome = "bad_request"  # the real Messages API refuses a request without max_tokens
        state.stats[request.model][outcome or "ok"] += 1

        if outcome == "timeout":
            await asyncio.sleep(script.errors.timeout_hold_s)
        if outcome is not None and not (outcome == "content_filter" and api != "openai"):
            return self._error(api, outcome, script, answer, request_id)

        stop_reason = None
        if outcome == "content_filter":
            # Anthropic and Gemini report a filtered prompt in a 200: a refusal stop reason, a block reason.
            answer = SimAnswer("", "stop", answer.input_tokens, 0)
            if api == "gemini":
                return _Response(200, wire.gemini_blocked(answer, request.model, request_id))
            stop_reason = "refusal"

        latency = script.latency.sample_ms(state.rng) / 1000
        response_headers = {"x-request-id": request_id, "request-id": request_id}
        if not payload.get("stream"):
            if latency:
                await asyncio.sleep(latency)
            if api == "openai":
                body = wire.openai_response(answer, request.model, request_id)
            elif api == "anthropic":
                body = wire.anthropic_response(answer, request.model, request_id, stop_reason)
            else:
                body = wire.gemini_response(answer, request.model, request_id)
            return _Response(200, body, response_headers)

        pieces = _split_words(answer.text, script.stream_chunk_words)
        ttft = script.ttft.sample_ms(state.rng) / 1000 if script.ttft else latency / 3
        rest = max(latency - ttft, 0.0)
        delays = [ttft] + [rest / max(len(pieces) - 1, 1)] * max(len(pieces) - 1, 0)
        if api == "openai":
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            stream = wire.openai_stream(answer, request.model, request_id, pieces, include_usage)
        elif api == "anthropic":
            stream = wire.anthropic_stream(answer, request.model, request_id, pieces, stop_reason)
        else:
            stream = wire.gemini_stream(answer, request.model, request_id, pieces)
        return _Response(200, None, response_headers, stream=stream, piece_delays=delays)

    def _error(self, api: str, kind: str, script: ModelScript, answer: SimAnswer, request_id: str) -> _Response:
        facts = {"tokens": answer.input_tokens, "window": script.context_window or max(answer.input_tokens - 1, 1)}
        retry_after = script.errors.retry_after_s
        if api == "openai":
            status, body = wire.openai_error(kind, **facts)
        elif api == "anthropic":
            status, body = wire.anthropic_error(kind, **facts)
        else:
            status, body = wire.gemini_error(kind, retry_after=retry_after, **facts)
        headers = {"x-request-id": request_id, "request-id": request_id}
        if kind == "rate_limited" and retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return _Response(status, body, headers)

    # --- admin -----------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, payload: Any) -> _Response:
        state = self.state
        if path == "/_sim/health":
            return _Response(200, {"ok": True})
        if path == "/_sim/stats":
            return _Response(200, {"requests": {m: dict(c) for m, c in state.stats.items()}})
        if path == "/_sim/reset" and method == "POST":
            state.stats.clear()
            state.forced.clear()
            state.recent.clear()
            return _Response(200, {"ok": True})
        if path == "/_sim/models":
            scenario = state.scenario
            return _Response(200, {"default": scenario.default.to_dict(),
                                   "models": {n: s.to_dict() for n, s in scenario.models.items()}})
        match = _MODEL_ADMIN_PATH.match(path)
        if not match:
            return _Response(404, {"error": {"message": f"no admin route {path}"}})
        name = match["name"]
        try:
            if match["outcomes"] and method == "POST":
                outcomes = list(payload.get("outcomes", []))
                _check_outcomes(outcomes)
                state.forced[name].extend(outcomes)
                return _Response(200, {"queued": list(state.forced[name])})
            if method == "POST":  # merge the changes into the model's current script
                state.set_script(name, state.scenario.script_for(name).updated(payload))
            elif method == "PUT":  # replace the script outright
                state.set_script(name, ModelScript.from_dict(payload))
        except (TypeError, ValueError) as error:
            return _Response(400, {"error": {"message": str(error)}})
        return _Response(200, state.scenario.script_for(name).to_dict())


def _check_outcomes(outcomes: Iterable[str]) -> None:
    unknown = set(outcomes) - set(ERROR_KINDS) - {"ok"}
    if unknown:
        raise ValueError(f"unknown outcome(s) {sorted(unknown)}; known: ok, {', '.join(ERROR_KINDS)}")


def _presented_key(headers: Mapping[str, str], query: Mapping[str, list[str]]) -> str | None:
    bearer = headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return bearer[7:]
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or (query.get("key") or [None])[0]


def _split_words(text: str, words_per_piece: int) -> list[str]:
    if not text:
        return []
    words = text.split(" ")
    step = max(words_per_piece, 1)
    pieces = [" ".join(words[i:i + step]) for i in range(0, len(words), step)]
    # Keep the separating spaces so that the pieces concatenate back to the exact text.
    return [piece + (" " if i < len(pieces) - 1 else "") for i, piece in enumerate(pieces)]


# --- HTTP/1.1 ------------------------------------------------------------------------------------


async def _serve_connection(app: SimulatorApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            try:
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await _read_chunked(reader)
                else:
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
            except ValueError:
                await _write_response(writer, _Response(400, {"error": {"message": "malformed HTTP request"}},
                                                        {"connection": "close"}))
                return
            try:
                response = await app.handle(method, target, headers, body)
            except Exception as error:  # a request the simulator cannot make sense of must not kill the server
                response = _Response(500, {"error": {"message": f"simulator error: {error!r}", "type": "api_error"}})
            await _write_response(writer, response)
            if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _write_response(writer: asyncio.StreamWriter, response: _Response) -> None:
    reason = _REASONS.get(response.status, "Status")
    extra = "".join(f"{k}: {v}\r\n" for k, v in response.headers.items())
    if response.stream is None:
        body = json.dumps(response.body).encode()
        writer.write(f"HTTP/1.1 {response.status} {reason}\r\ncontent-type: application/json\r\n"
                     f"content-length: {len(body)}\r\n{extra}\r\n".encode() + body)
        await writer.drain()
        return
    writer.write(f"HTTP/1.1 {response.status} {reason}\r\ncontent-type: text/event-stream\r\n"
                 f"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n{extra}\r\n".encode())
    delays: Iterator[float] = iter(response.piece_delays)
    pending: list[bytes] = []  # chunks due at the same moment go out in one write (one syscall)
    for is_content, data in response.stream:
        if is_content:
            delay = next(delays, 0.0)
            if delay > 0:
                writer.write(b"".join(pending))
                pending.clear()
                await writer.drain()
                await asyncio.sleep(delay)
        pending.append(b"%x\r\n%s\r\n" % (len(data), data))
    pending.append(b"0\r\n\r\n")
    writer.write(b"".join(pending))
    await writer.drain()


class SimulatorServer:
    """The simulator on loopback, on its own event loop in a background thread.

        with SimulatorServer(scenario) as sim:
            client = openai.OpenAI(base_url=sim.openai_base_url, api_key="x", max_retries=0)

    Port 0 picks a free port; `port` holds the bound one once started.
    """

    def __init__(self, scenario: Scenario | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = SimulatorState(scenario or Scenario())
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # --- addresses the SDKs take as base_url
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    # --- lifecycle
    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(target=self._run_in_thread, name="cutover-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._startup_error is not None:
            raise RuntimeError("simulator failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run_in_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as error:  # surfaced to start() instead of dying silently in the thread
            self._startup_error = error
            self._ready.set()

    async def serve(self, on_ready: Any = None) -> None:
        """Serve until stop(); usable directly with asyncio.run() (the CLI does)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = SimulatorApp(self.state)
        connections: set[asyncio.Task[None]] = set()

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await _serve_connection(app, reader, writer)
            except asyncio.CancelledError:
                # Only stop() cancels connections; ending quietly keeps asyncio from logging each one.
                pass
            finally:
                connections.discard(task)

        server = await asyncio.start_server(on_connection, self.host, self.port, reuse_address=True, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        if on_ready is not None:
            on_ready(self)
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()

    # --- runtime control, safe from any thread
    def _call(self, function: Any, *args: Any) -> Any:
        if self._loop is None or self._thread is None:
            return function(*args)
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(function, *args), self._loop)
        return future.result(timeout=10)

    def set_script(self, model: str, script: ModelScript) -> None:
        """Replace a model's script while serving (e.g. to inject a regression)."""
        self._call(self.state.set_script, model, script)

    def update_script(self, model: str, changes: Mapping[str, Any]) -> ModelScript:
        """Deep-merge `changes` (same shape as the scenario file) into a model's current script."""
        script = self.state.scenario.script_for(model).updated(changes)
        self.set_script(model, script)
        return script

    def queue_outcomes(self, model: str, outcomes: Sequence[str]) -> None:
        """Force the next requests to `model` to end as given ("ok" or an error kind), in order."""
        _check_outcomes(outcomes)
        self._call(self.state.forced[model].extend, list(outcomes))

    def stats(self) -> dict[str, dict[str, int]]:
        return self._call(lambda: {m: dict(c) for m, c in self.state.stats.items()})

    def recorded_requests(self, model: str | None = None) -> list[RecordedRequest]:
        return self._call(lambda: [r for r in self.state.recent if model is None or r.model == model])

    def reset(self) -> None:
        def clear() -> None:
            self.state.stats.clear()
            self.state.forced.clear()
            self.state.recent.clear()
        self._call(clear)


async def _as_coroutine(function: Any, *args: Any) -> Any:
    return function(*args)
