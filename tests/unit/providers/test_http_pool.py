"""The sidecar's minimal HTTP/1.1 client: body framings, keep-alive reuse, a kept-alive connection the
server closed, timeouts. Against a scripted asyncio server on loopback."""

from __future__ import annotations

import asyncio

import pytest

from cutover.providers.http_pool import ConnectionPool, HttpTransportError


async def _serve(answers: list[bytes], *, close_after_each: bool = False):
    """A server answering successive requests with `answers` (raw bytes); counts connections."""
    connections = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                answer = answers.pop(0)
                if answer == b"hang":
                    await asyncio.sleep(5)
                writer.write(answer)
                await writer.drain()
                if close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x", connections


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_content_length_and_chunked_bodies__connection_kept_alive():
    async def main():
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        server, url, connections = await _serve([_ok(b'{"a": 1}'), chunked])
        async with server, ConnectionPool() as pool:
            first = await pool.post(url, b"{}", {}, timeout=2)
            second = await pool.post(url, b"{}", {}, timeout=2)
        return first, second, len(connections)

    first, second, connections = asyncio.run(main())
    assert (first.status, first.content, second.content) == (200, b'{"a": 1}', b"hello world")
    assert connections == 1


def test_streamed_lines__split_across_chunks():
    async def main():
        chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"8\r\ndata: {}\r\n9\r\n\n\ndata: [\r\n6\r\nDONE]\n\r\n0\r\n\r\n")
        server, url, _ = await _serve([chunked])
        async with server, ConnectionPool() as pool:
            response = await pool.post(url, b"{}", {}, timeout=2, read_body=False)
            lines = [line async for line in response.lines()]
            await response.aclose()
        return lines

    assert asyncio.run(main()) == ["data: {}", "", "data: [DONE]"]


def test_kept_alive_connection_closed_by_the_server__request_sent_again_on_a_fresh_one():
    async def main():
        server, url, connections = await _serve([_ok(b"1"), _ok(b"2")], close_after_each=True)
        async with server, ConnectionPool() as pool:
            first = await pool.post(url, b"{}", {}, timeout=2)
            await asyncio.sleep(0.05)  # the server has closed the idle connection by now
            second = await pool.post(url, b"{}", {}, timeout=2)
        return first.content, second.content, len(connections)

    assert asyncio.run(main()) == (b"1", b"2", 2)


def test_no_answer_in_time__timeout_error():
    async def main():
        server, url, _ = await _serve([b"hang"])
        async with server, ConnectionPool() as pool:
            await pool.post(url, b"{}", {}, timeout=0.1)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_nothing_listening__transport_error():
    async def main():
        async with ConnectionPool() as pool:
            await pool.post("http://127.0.0.1:9/v1/x", b"{}", {}, timeout=1)

    with pytest.raises(HttpTransportError):
        asyncio.run(main())
