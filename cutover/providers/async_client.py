"""Model calls for asyncio code (the sidecar, `CutoverClient.acomplete`), with ModelClient's contract:
one Completion, retried by the same RetryPolicy, errors in the same taxonomy.

Arms whose provider speaks OpenAI's wire format (openai, openai_compatible) are called over a pooled,
keep-alive raw HTTP/1.1 connection (http_pool.py) on the event loop itself: no official SDK (≈ 0.6 ms of
client overhead a call), no httpx (about as much again) and no thread hop. The body is built and the
answer read by openai_wire.py, exactly as the official adapter does. Other providers (anthropic, gemini)
keep their official SDKs, run in a thread pool.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

from cutover.providers.base import Attempt, StreamPiece, effective_timeout, read_api_key
from cutover.providers.client import Clock, CompletionStream, ModelClient, StreamTally, completion_from_attempt
from cutover.providers.errors import ErrorKind, ProviderError, error_from_http
from cutover.providers.http_pool import ConnectionPool, HttpTransportError, PooledResponse
from cutover.providers.openai_wire import ChunkReader, attempt_from_body, chat_body, retry_after_seconds
from cutover.providers.retry import RetryPolicy, acall_with_retries
from cutover.providers.types import ChatRequest, Completion, EndpointSpec, Provider

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_WIRE_PROVIDERS = frozenset({Provider.OPENAI, Provider.OPENAI_COMPATIBLE})


class AsyncCompletionStream(Protocol):
    """Iterate (async) for the text as it arrives; `completion` once iteration ended."""

    @property
    def completion(self) -> Completion: ...

    def __aiter__(self) -> AsyncIterator[str]: ...


class AsyncModelClient(Protocol):
    endpoint: EndpointSpec

    async def complete(self, request: ChatRequest, *, stream: bool = False) -> Completion: ...

    def stream(self, request: ChatRequest) -> AsyncCompletionStream: ...


def proxied(url: str) -> bool:
    """Whether an HTTP(S)_PROXY / ALL_PROXY in the environment (less NO_PROXY) applies to `url`, as the official
    SDKs' transport (httpx) would honour it."""
    proxies = getproxies_environment()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not proxy_bypass_environment(parts.hostname or "", proxies)


def takes_fast_path(endpoint: EndpointSpec) -> bool:
    """OpenAI-format endpoints reached without a proxy go over raw HTTP; the rest through the SDKs
    (the raw client speaks plain HTTP/1.1 and TLS, no proxies)."""
    if endpoint.provider not in OPENAI_WIRE_PROVIDERS:
        return False
    base_url = endpoint.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
    return not proxied(base_url)


def make_async_client(endpoint: EndpointSpec, *, retry_policy: RetryPolicy, http: ConnectionPool,
                      sync_client: Callable[[], ModelClient], executor: Executor) -> AsyncModelClient:
    """The raw-HTTP client for OpenAI-format endpoints reached without a proxy; otherwise the official-SDK
    `sync_client()` in `executor`."""
    if takes_fast_path(endpoint):
        return OpenAIWireClient(endpoint, retry_policy=retry_policy, http=http)
    return ThreadedModelClient(sync_client(), executor)


def pooled_http_client() -> ConnectionPool:
    """One keep-alive connection pool for every OpenAI-format endpoint of an event loop."""
    return ConnectionPool()


# --- OpenAI wire format over raw HTTP --------------------------------------------------------------------


class OpenAIWireClient:
    def __init__(self, endpoint: EndpointSpec, *, retry_policy: RetryPolicy, http: ConnectionPool,
                 clock: Clock = time.perf_counter) -> None:
        self.endpoint = endpoint
        self.retry_policy = retry_policy
        self.http = http
        self.clock = clock
        base_url = endpoint.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
        self.url = base_url.rstrip("/") + "/chat/completions"

    def _body(self, request: ChatRequest, *, stream: bool) -> bytes:
        body = chat_body(self.endpoint, request)
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return json.dumps(body, separators=(",", ":")).encode()

    def _headers(self) -> dict[str, str]:
        # The key is read per call (a rotated key is picked up), as the official adapter does.
        return {"Authorization": f"Bearer {read_api_key(self.endpoint)}", "Content-Type": "application/json"}

    def _error(self, kind: ErrorKind, message: str, request_id: str | None = None) -> ProviderError:
        return ProviderError(kind, message, provider=self.endpoint.provider.value, model=self.endpoint.model,
                             request_id=request_id)

    async def _send(self, body: bytes, timeout: float, *, stream: bool) -> PooledResponse:
        """One HTTP attempt; a transport failure or an HTTP error status raises ProviderError. Streamed, the
        body is left to the caller (who must `aclose()` the response)."""
        try:
            response = await self.http.post(self.url, body, self._headers(), timeout=timeout, read_body=not stream)
            if response.status >= 400 and stream:
                try:
                    await response.read()
                finally:
                    await response.aclose()
        except TimeoutError as error:
            raise self._error(ErrorKind.TIMEOUT, f"no answer within {timeout:g} s") from error
        except (OSError, EOFError, HttpTransportError) as error:
            raise self._error(ErrorKind.SERVER_ERROR, f"connection failed: {error}") from error
        if response.status >= 400:
            raise self._status_error(response)
        return response

    def _status_error(self, response: PooledResponse) -> ProviderError:
        message, code = f"Error code: {response.status}", None
        try:
            detail = json.loads(response.content).get("error")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, dict):
            message = str(detail.get("message") or message)
            code = detail.get("code") if isinstance(detail.get("code"), str) else None
        return error_from_http(response.status, message, code=code,
                               retry_after=retry_after_seconds(response.headers),
                               provider=self.endpoint.provider.value, model=self.endpoint.model,
                               request_id=response.headers.get("x-request-id"))

    async def _attempt(self, body: bytes, timeout: float) -> Attempt:
        response = await self._send(body, timeout, stream=False)
        request_id = response.headers.get("x-request-id")
        try:
            answer = json.loads(response.content)
        except ValueError as error:
            raise self._error(ErrorKind.SERVER_ERROR, "the response is not JSON", request_id) from error
        return attempt_from_body(self.endpoint, answer, request_id)

    async def complete(self, request: ChatRequest, *, stream: bool = False) -> Completion:
        if stream:
            completion_stream = self.stream(request)
            async for _ in completion_stream:
                pass
            return completion_stream.completion
        started = self.clock()
        body, timeout = self._body(request, stream=False), effective_timeout(request, self.endpoint)
        outcome = await acall_with_retries(lambda: self._attempt(body, timeout), self.retry_policy)
        return completion_from_attempt(self.endpoint, outcome, (self.clock() - started) * 1000)

    def stream(self, request: ChatRequest) -> OpenAIWireStream:
        return OpenAIWireStream(self, request)


class OpenAIWireStream:
    """A streamed call over raw HTTP. Opening it and reading its first event are retried; a failure after
    that is not (the caller may have shown text already) — CompletionStream's contract."""

    def __init__(self, client: OpenAIWireClient, request: ChatRequest) -> None:
        self._client = client
        self._request = request
        self._completion: Completion | None = None

    @property
    def completion(self) -> Completion:
        if self._completion is None:
            raise RuntimeError("the stream has not been read to the end yet")
        return self._completion

    async def _open(self, body: bytes, timeout: float) -> tuple[PooledResponse, AsyncIterator[StreamPiece]]:
        response = await self._client._send(body, timeout, stream=True)
        pieces = self._pieces(response)
        try:
            first = await anext(pieces, None)  # an error event before any text is retried like a status
        except BaseException:
            await response.aclose()
            raise
        return response, _prepend(first, pieces)

    async def _pieces(self, response: PooledResponse) -> AsyncIterator[StreamPiece]:
        client = self._client
        reader = ChunkReader(client.endpoint, response.headers.get("x-request-id"))
        try:
            async for line in response.lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, `event:` lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if isinstance(chunk, dict) and chunk.get("error"):
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise client._error(ErrorKind.SERVER_ERROR, f"error event in the stream: {message}",
                                        reader.request_id)
                yield reader.piece(chunk)
        except TimeoutError as error:
            raise client._error(ErrorKind.TIMEOUT, "the stream stalled", reader.request_id) from error
        except (OSError, EOFError, HttpTransportError) as error:
            raise client._error(ErrorKind.SERVER_ERROR, f"stream broke: {error!r}", reader.request_id) from error
        except ValueError as error:
            raise client._error(ErrorKind.SERVER_ERROR, "a stream event is not JSON", reader.request_id) from error

    def __aiter__(self) -> AsyncIterator[str]:
        return self._texts()

    async def _texts(self) -> AsyncIterator[str]:
        client = self._client
        started = client.clock()
        body = client._body(self._request, stream=True)
        timeout = effective_timeout(self._request, client.endpoint)
        outcome = await acall_with_retries(lambda: self._open(body, timeout), client.retry_policy)
        response, pieces = outcome.value
        tally = StreamTally(client.endpoint, started, client.clock)
        try:
            async for piece in pieces:
                tally.add(piece)
                if piece.text:
                    yield piece.text
        finally:
            await response.aclose()
        self._completion = tally.completion(outcome)


async def _prepend(first: StreamPiece | None, rest: AsyncIterator[StreamPiece]) -> AsyncIterator[StreamPiece]:
    if first is not None:
        yield first
    async for piece in rest:
        yield piece


# --- official SDKs, in a thread pool ----------------------------------------------------------------------


class ThreadedModelClient:
    """A ModelClient (official SDK, synchronous) driven from asyncio through a thread pool."""

    def __init__(self, client: ModelClient, executor: Executor) -> None:
        self.client = client
        self.endpoint = client.endpoint
        self.executor = executor

    async def complete(self, request: ChatRequest, *, stream: bool = False) -> Completion:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: self.client.complete(request, stream=stream))

    def stream(self, request: ChatRequest) -> ThreadedStream:
        return ThreadedStream(self.client.stream(request), self.executor)


_END = object()


class ThreadedStream:
    """A CompletionStream iterated in a pool thread, its texts (or its error) handed to the loop."""

    def __init__(self, stream: CompletionStream, executor: Executor) -> None:
        self._stream = stream
        self._executor = executor

    @property
    def completion(self) -> Completion:
        return self._stream.completion

    def __aiter__(self) -> AsyncIterator[str]:
        return self._texts()

    async def _texts(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def pump(pieces: Iterator[str]) -> None:
            put = loop.call_soon_threadsafe
            try:
                for text in pieces:
                    put(queue.put_nowait, text)
                put(queue.put_nowait, _END)
            except BaseException as error:  # noqa: BLE001 - re-raised on the loop, in the reader
                put(queue.put_nowait, error)

        self._executor.submit(pump, iter(self._stream))
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


__all__ = ["AsyncModelClient", "OpenAIWireClient", "ThreadedModelClient", "make_async_client",
           "pooled_http_client"]
