"""Blocking model calls from many threads, made on one background event loop per process.

A thread-pool worker (Cutover's Celery worker runs shadow comparisons and evaluation calls in 40 threads)
calling the official `openai` SDK pays its whole client stack in every thread: request models, httpx,
httpcore — about 2 ms of CPU a call on a 2-core host, the largest share of a shadow comparison. Here the
calls to OpenAI-format endpoints are coroutines of the raw-HTTP `OpenAIWireClient` (async_client.py, the
sidecar's fast path: the same body builder and answer reader as the official adapter, the same error
taxonomy), run on one asyncio loop in a daemon thread over one keep-alive connection pool; the calling
thread submits its call (`asyncio.run_coroutine_threadsafe`) and waits for the Completion or the
ProviderError. The RetryPolicy's decisions are the same (`acall_with_retries` asks `policy.delay_for`);
its waits are `asyncio.sleep`, not `policy.sleep`.

Everything else keeps the official SDKs, called in the calling thread (`complete()`): anthropic and gemini
endpoints, and OpenAI-format endpoints whose URL an HTTP(S)_PROXY in the environment applies to (the raw
client speaks plain HTTP/1.1 and TLS, no proxies). A process that forks after using the loop (a prefork
pool) starts its own loop in the child: a loop, its thread and its sockets are never shared across a fork.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future

from cutover.providers.async_client import OpenAIWireClient, takes_fast_path
from cutover.providers.client import complete
from cutover.providers.http_pool import ConnectionPool
from cutover.providers.retry import RetryPolicy
from cutover.providers.types import ChatRequest, Completion, EndpointSpec


class LoopClient:
    """`complete()` callable from any thread: OpenAI-format calls run on this object's event loop (started on
    first use, in a daemon thread), other calls in the calling thread through the official SDKs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: ConnectionPool | None = None
        self._clients: dict[tuple[EndpointSpec, RetryPolicy], OpenAIWireClient] = {}
        self._routes: dict[EndpointSpec, bool] = {}

    def _started(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # In a forked child the parent's loop thread does not exist: start afresh, leaving the
                # inherited loop and sockets alone (closing them could disturb the parent's connections).
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="cutover-model-calls", daemon=True)
                thread.start()
                self._clients, self._routes = {}, {}
                self._http = ConnectionPool()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def _wire_client(self, endpoint: EndpointSpec, retry_policy: RetryPolicy) -> OpenAIWireClient:
        key = (endpoint, retry_policy)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = OpenAIWireClient(endpoint, retry_policy=retry_policy, http=self._http)
        return client

    def fast(self, endpoint: EndpointSpec) -> bool:
        route = self._routes.get(endpoint)
        if route is None:
            route = self._routes[endpoint] = takes_fast_path(endpoint)
        return route

    def complete(self, endpoint: EndpointSpec, request: ChatRequest, *, retry_policy: RetryPolicy) -> Completion:
        """One non-streamed call, retried by `retry_policy`; raises ProviderError when it fails for good."""
        if not self.fast(endpoint):
            return complete(endpoint, request, retry_policy=retry_policy)
        loop = self._started()
        client = self._wire_client(endpoint, retry_policy)
        future: Future[Completion] = asyncio.run_coroutine_threadsafe(client.complete(request), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # the caller gave up (an interrupt): do not leave the call running for nobody
            raise

    def close(self) -> None:
        """Stop the loop and close its connections (tests; a worker simply exits)."""
        with self._lock:
            loop, thread, http = self._loop, self._thread, self._http
            self._loop = self._thread = self._http = None
            self._clients, self._routes = {}, {}
            if loop is None or self._pid != os.getpid():
                return
        asyncio.run_coroutine_threadsafe(http.aclose(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


_shared = LoopClient()


def loop_complete(endpoint: EndpointSpec, request: ChatRequest, *, retry_policy: RetryPolicy) -> Completion:
    """`complete()` for threaded callers, on the process's shared LoopClient."""
    return _shared.complete(endpoint, request, retry_policy=retry_policy)


def loop_client() -> LoopClient:
    return _shared


__all__ = ["LoopClient", "loop_client", "loop_complete"]
