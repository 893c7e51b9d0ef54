"""A minimal asyncio HTTP/1.1 client with keep-alive connection pooling, for the sidecar's hot path.

Why not httpx: on every proxied call its AsyncClient (httpcore, h11, anyio) cost the sidecar more CPU than
the rest of the request put together (profiled: ~1 ms a call on a 2-core machine). Model APIs need little
of HTTP: a POST with a JSON body, answered with a Content-Length or chunked body (server-sent events when
streaming). That is all this does — no redirects, cookies, proxies, HTTP/2 or compression.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

USER_AGENT = "cutover-sidecar/0.1"
MAX_HEAD_BYTES = 64 * 1024


class HttpTransportError(Exception):
    """The connection failed or the server broke the protocol (no HTTP status to speak of)."""


_Origin = tuple[str, str, int]  # scheme, host, port


class _Connection:
    __slots__ = ("origin", "reader", "writer", "idle_since")

    def __init__(self, origin: _Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class PooledResponse:
    """Status and headers (names lower-cased); the body through `read()` or `lines()`, then `aclose()`
    (which returns the connection to the pool if the body was read to its end)."""

    def __init__(self, pool: ConnectionPool, connection: _Connection, status: int, headers: dict[str, str],
                 read_timeout: float) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status = status
        self.headers = headers
        self._read_timeout = read_timeout
        self._done = False
        self.content = b""

    def _reusable(self) -> bool:
        return self._done and self.headers.get("connection", "").lower() != "close"

    async def _chunks(self) -> AsyncIterator[bytes]:
        assert self._connection is not None
        reader, timeout = self._connection.reader, self._read_timeout
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                async with asyncio.timeout(timeout):
                    size_line = await reader.readline()
                    try:
                        size = int(size_line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise HttpTransportError("malformed chunk size") from None
                    if size == 0:
                        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        self._done = True
                        return
                    data = await reader.readexactly(size + 2)
                yield data[:-2]
        elif "content-length" in self.headers:
            length = int(self.headers["content-length"])
            async with asyncio.timeout(timeout):
                data = await reader.readexactly(length) if length else b""
            self._done = True
            if data:
                yield data
        else:  # delimited by the end of the connection, which then cannot be reused
            while True:
                async with asyncio.timeout(timeout):
                    data = await reader.read(65536)
                if not data:
                    self.headers["connection"] = "close"
                    self._done = True
                    return
                yield data

    async def read(self) -> bytes:
        self.content = b"".join([chunk async for chunk in self._chunks()])
        return self.content

    async def lines(self) -> AsyncIterator[str]:
        """The body as text lines (for server-sent events), without their line ends."""
        buffer = ""
        async for chunk in self._chunks():
            buffer += chunk.decode()
            *complete, buffer = buffer.split("\n")
            for line in complete:
                yield line.removesuffix("\r")
        if buffer:
            yield buffer

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._reusable():
            self._pool._release(connection)
        else:
            connection.close()


class ConnectionPool:
    """Keep-alive connections per origin, for one event loop. Idle connections older than `idle_expiry`
    seconds are not reused (servers close them; reusing one would fail)."""

    def __init__(self, *, max_idle_per_origin: int = 128, idle_expiry: float = 30.0) -> None:
        self.max_idle_per_origin = max_idle_per_origin
        self.idle_expiry = idle_expiry
        self._idle: defaultdict[_Origin, deque[_Connection]] = defaultdict(deque)
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def _connect(self, origin: _Origin) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=MAX_HEAD_BYTES)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket

            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(origin, reader, writer)

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed
            if now - connection.idle_since < self.idle_expiry and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def _release(self, connection: _Connection) -> None:
        idle = self._idle[connection.origin]
        if self._closed or len(idle) >= self.max_idle_per_origin:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float,
                   read_body: bool = True) -> PooledResponse:
        """POST `body`; the response with its head read, and its body too unless `read_body=False` (then the
        caller reads it and must `aclose()` it). `timeout` bounds connecting and sending plus reading the
        head (and body), and then each later read. Raises HttpTransportError or TimeoutError."""
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host = parts.hostname or ""
        origin = (parts.scheme, host, parts.port or (443 if secure else 80))
        default_port = parts.port is None or parts.port == (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {host if default_port else parts.netloc.rpartition('@')[2]}",
                 f"Content-Length: {len(body)}", f"User-Agent: {USER_AGENT}", "Accept: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(timeout):
            while True:
                connection = self._take_idle(origin)
                reused = connection is not None
                if connection is None:
                    try:
                        connection = await self._connect(origin)
                    except OSError as error:
                        raise HttpTransportError(f"cannot connect to {host}:{origin[2]}: {error}") from error
                try:
                    connection.writer.write(request)
                    head = await connection.reader.readuntil(b"\r\n\r\n")
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                    connection.close()
                    # A kept-alive connection the server closed meanwhile fails before any answer:
                    # nothing was processed, so try again on a fresh one. A fresh one failing is an error.
                    if not reused:
                        raise HttpTransportError(f"the connection to {host} failed: {error!r}") from error
            response = _parse_head(self, connection, head, timeout)
            if read_body:
                try:
                    await response.read()
                except (OSError, asyncio.IncompleteReadError, HttpTransportError) as error:
                    await response.aclose()
                    raise HttpTransportError(f"the response from {host} broke off: {error!r}") from error
                await response.aclose()
        return response

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


def _parse_head(pool: ConnectionPool, connection: _Connection, head: bytes, timeout: float) -> PooledResponse:
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        connection.close()
        raise HttpTransportError(f"malformed status line {status_line[:80]!r}") from None
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return PooledResponse(pool, connection, status, headers, timeout)
