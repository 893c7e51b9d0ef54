"""A local HTTP sink: records every request it receives and answers with the status codes it is told to.

    with HttpSink() as sink:
        sink.respond_with(500, 500)            # the next two requests get 500, later ones 200
        post(sink.url_for("/hooks/slack"), ...)
        first, *_ = sink.wait_for(3, timeout=10)
        assert first.json()["text"]

It listens on 127.0.0.1 on a free port in a background thread (ThreadingHTTPServer), so code under test
(in this process or another one, e.g. a Celery worker) can reach it at `sink.url`.
"""

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)
    status: int = 200  # what the sink answered

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == lowered), default)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    delay: float = 0.0


class HttpSink:
    def __init__(self, *, default_status: int = 200, default_body: bytes = b"ok") -> None:
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._answers: deque[_Answer] = deque()
        self._default = _Answer(default_status, {}, default_body)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                answer = sink._next_answer()
                if answer.delay:
                    time.sleep(answer.delay)
                sink._record(RecordedRequest(method=self.command, path=self.path, headers=dict(self.headers.items()),
                                             body=body, status=answer.status))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="http-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- where it listens --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "the sink is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    # --- what it answers ---------------------------------------------------------------------------------

    def respond_with(self, *statuses: int, headers: dict[str, str] | None = None, body: bytes = b"",
                     delay: float = 0.0) -> None:
        """Answer the next len(statuses) requests with these statuses, in order (then the default again),
        with these headers and body, each after `delay` seconds (to hold a request in flight)."""
        with self._lock:
            self._answers.extend(_Answer(status, dict(headers or {}), body, delay) for status in statuses)

    def _next_answer(self) -> _Answer:
        with self._lock:
            return self._answers.popleft() if self._answers else self._default

    # --- what it received --------------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._received:
            self._requests.append(request)
            self._received.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The first `count` requests, waiting up to `timeout` seconds for them; AssertionError if they
        don't all arrive."""
        deadline = time.monotonic() + timeout
        with self._received:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} request(s) within {timeout} s, got {len(self._requests)}")
                self._received.wait(remaining)
            return list(self._requests[:count])

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._answers.clear()
