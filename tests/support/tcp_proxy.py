"""A TCP proxy on loopback that a test can cut and restore: "the database is unreachable" without touching the
shared PostgreSQL server.

    with TcpProxy("127.0.0.1", 5432) as proxy:      # listens on 127.0.0.1:proxy.port
        ...point a subprocess at proxy.port...
        proxy.cut()       # open connections are dropped; new ones are accepted and closed at once
        proxy.restore()   # connections reach the target again

It runs an asyncio loop in a daemon thread; each accepted connection is piped both ways to a fresh connection
to the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Self


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.connections = 0  # accepted while not cut
        self.refused = 0  # accepted and closed while cut
        self._cut = False
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._call(self._drop_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- faults ----------------------------------------------------------------------------------------

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until restore()."""
        self._cut = True
        self._call(self._drop_all())

    def restore(self) -> None:
        self._cut = False

    @property
    def is_cut(self) -> bool:
        return self._cut

    # --- the pipe --------------------------------------------------------------------------------------

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
