"""How many requests per second the provider simulator serves, so it is never a benchmark's bottleneck.

Starts `cutover simulator` in its own process with a zero-latency scenario, drives it over loopback
with raw keep-alive HTTP/1.1 connections from another process (a raw client, so the client is not
the bottleneck), prints the figures and records them in docs/benchmarks.md.

    .venv/bin/python bench/simulator_throughput.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- simulator-throughput:start -->", "<!-- simulator-throughput:end -->"

SCENARIO = {"default": {"latency": {"median_ms": 0}, "answer": {"kind": "deterministic", "words": 24}}}
PROMPT = [{"role": "user", "content": "Where is my refund for order 1234? It has been two weeks."}]
WORKLOADS = {
    "openai chat.completions": ("/v1/chat/completions", {"model": "bench", "messages": PROMPT, "max_tokens": 200}),
    "openai chat.completions, streamed": (
        "/v1/chat/completions",
        {"model": "bench", "messages": PROMPT, "max_tokens": 200, "stream": True,
         "stream_options": {"include_usage": True}},
    ),
    "anthropic messages": ("/v1/messages", {"model": "bench", "messages": PROMPT, "max_tokens": 200}),
    "gemini generateContent": (
        "/v1beta/models/bench:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": PROMPT[0]["content"]}]}]},
    ),
}


async def _connection(port: int, request: bytes, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if b"transfer-encoding: chunked" in head:
                await reader.readuntil(b"\r\n0\r\n\r\n")
            else:
                length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def _drive(port: int, path: str, body: dict, seconds: float, connections: int, queue: multiprocessing.Queue) -> None:
    payload = json.dumps(body).encode()
    request = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               f"x-api-key: bench\r\ncontent-length: {len(payload)}\r\n\r\n").encode() + payload

    async def run() -> list[float]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_connection(port, request, deadline, latencies) for _ in range(connections)))
        return latencies

    started = time.perf_counter()
    latencies = asyncio.run(run())
    queue.put((len(latencies), time.perf_counter() - started, sorted(latencies)))


def measure(port: int, path: str, body: dict, seconds: float, connections: int) -> dict[str, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    client = multiprocessing.Process(target=_drive, args=(port, path, body, seconds, connections, queue))
    client.start()
    count, elapsed, latencies = queue.get()
    client.join()
    return {
        "requests": count,
        "rps": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def record(results: dict[str, dict[str, float]], seconds: float, connections: int) -> None:
    lines = [
        START,
        "## Provider simulator throughput",
        "",
        f"`bench/simulator_throughput.py` — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, simulator in one process, raw keep-alive HTTP/1.1 client in another, "
        f"{connections} connections, {seconds:g} s per workload, zero-latency scripts.",
        "",
        "| workload | requests/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |" for name, r in results.items()),
        END,
    ]
    section = "\n".join(lines)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as scenario_file:
        json.dump(SCENARIO, scenario_file)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "simulator", "--port", "0", "--scenario", scenario_file.name],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        port = json.loads(server.stdout.readline())["port"]
        measure(port, *WORKLOADS["openai chat.completions"], seconds=1.0, connections=args.connections)  # warm up
        results = {}
        for name, (path, body) in WORKLOADS.items():
            results[name] = measure(port, path, body, args.seconds, args.connections)
            r = results[name]
            print(f"{name:38} {r['rps']:9,.0f} req/s   p50 {r['p50_ms']:.2f} ms   p99 {r['p99_ms']:.2f} ms")
    finally:
        server.terminate()
        server.wait(timeout=10)
        os.unlink(scenario_file.name)
    if not args.no_record:
        record(results, args.seconds, args.connections)
        print(f"recorded in {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
