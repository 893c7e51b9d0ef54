"""Load: many SDKs polling GET /api/v1/sdk/config (mostly 304s) and several processes posting event batches
to POST /api/v1/sdk/events, against the control plane under granian (its production server) on PostgreSQL +
Redis, each next to the same server answering the same bytes without Django (bench/_harness.py), measured
in the same run.

Creates a scratch PostgreSQL database (dropped and recreated each run), migrates it, creates a live plan in
each of two environments and SDK keys spread over them, and starts granian (WSGI) with DEBUG=0.

- Config polls, offered rate: `--sdks` simulated SDKs (asyncio, one keep-alive connection each, spread over
  `--poll-procs` client processes) each poll every sdks/rate seconds with If-None-Match set to the last
  ETag they got. Every `--change-every` seconds the bench pauses or resumes the prod plan, which bumps the
  prod environment's config version, so the next poll of each prod SDK gets a 200 with the new document.
  Latency is from the moment a poll was due (a late poll counts its wait), so queueing is not hidden.
- Config polls, saturation: the same SDKs polling back to back (closed loop): the most polls/s it serves.
- Events: `--event-procs` processes each post pre-encoded batches of `--batch` events over one keep-alive
  connection; afterwards the stored RequestEvent rows and the sum of MetricRollup.requests must both equal
  the number of events sent.

The bare baseline of each runs on the same server workers right before it. The server is stopped and the
scratch database dropped at the end, even on failure.

    .venv/bin/python bench/load.py [--seconds 15] [--rate 2000] [--sdks 240] [--keys 50] [--no-record]

Needs PostgreSQL (trust auth) and Redis; see --pg and --redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    BARE_CONFIG_ENV,
    BARE_CONFIG_PATH,
    BARE_PATH,
    CONFIG_PATH,
    DOC,
    EVENTS_PATH,
    ROOT,
    close_django_connections,
    create_database,
    django_setup,
    drop_database,
    make_batches,
    percentile,
    pg_version,
    process_tree_cpu_seconds,
    record_config_answer,
    start_server,
    stop_server,
    stored,
    write_section,
)

START, END = "<!-- load:start -->", "<!-- load:end -->"
ENVIRONMENTS = ("prod", "staging")
CHANGING = "prod"  # the environment whose plan the bench pauses and resumes during the config phase
GOAL_POLLS, GOAL_P99_MS, GOAL_EVENTS = 2_000, 20.0, 10_000
KEPT_UP = 0.99  # the share of the offered poll rate a server that keeps up is measured to serve
_FORK = multiprocessing.get_context("fork")
# The per-key rate limit stays on the path (its cache increment is measured) but set far above what the
# bench's few keys send: a simulated SDK here polls hundreds of times faster than a real one.
RATE_LIMITS = "config=10000000/min,events=10000000/min"


# --- fixtures (in this process, through the services) ---------------------------------------------------
@dataclass
class Fixtures:
    sdks: list[tuple[str, str]]  # (secret, environment), one per simulated SDK; keys are shared round robin
    keys: int
    events_secret: str
    events_plan: str
    changing_plan: str


def make_fixtures(*, keys: int, sdks: int, prefix: str = "load") -> Fixtures:
    """A live plan per environment (published in its config document), `keys` SDK keys across the
    environments, an events-only plan; the SDKs share the keys round robin."""
    from migrations_app.services.plans import plan_act
    from tests import factories

    for environment in ENVIRONMENTS:
        plan = factories.make_plan(f"{prefix}-{environment}", environment=environment)
        plan_act(actor="bench", plan_key=plan.key, action="start")
    events_plan = factories.make_plan(f"{prefix}-events").key
    secrets = [(factories.make_sdk_key(ENVIRONMENTS[i % len(ENVIRONMENTS)]), ENVIRONMENTS[i % len(ENVIRONMENTS)])
               for i in range(keys)]
    return Fixtures(sdks=[secrets[i % keys] for i in range(sdks)], keys=keys, events_secret=secrets[0][0],
                    events_plan=events_plan, changing_plan=f"{prefix}-{CHANGING}")


class PlanChanger:
    """Pauses and resumes a plan every `every` seconds on a thread (each bumps its environment's version)."""

    def __init__(self, plan_key: str, every: float) -> None:
        self.plan_key, self.every, self.changes = plan_key, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        from django.db import connection

        from migrations_app.services.plans import plan_act

        try:
            while not self._stop.wait(self.every):
                plan_act(actor="bench", plan_key=self.plan_key, action="pause" if self.changes % 2 == 0 else "resume")
                self.changes += 1
        except BaseException as error:  # reported by the bench
            self.error = error
        finally:
            connection.close()

    def __enter__(self) -> PlanChanger:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# --- config pollers (client processes, asyncio, raw HTTP/1.1 over keep-alive connections) -----------------
@dataclass
class PollStats:
    latencies: list[float] = field(default_factory=list)  # seconds, from when the poll was due
    service: list[float] = field(default_factory=list)  # seconds, from when it was sent
    ok200: int = 0
    ok304: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    last: float = 0.0  # time.monotonic() of the last answer

    def merge(self, other: PollStats) -> None:
        self.latencies += other.latencies
        self.service += other.service
        self.ok200 += other.ok200
        self.ok304 += other.ok304
        self.errors += other.errors
        self.first_errors = (self.first_errors + other.first_errors)[:5]
        self.last = max(self.last, other.last)


async def _one_sdk(port: int, path: str, secret: str, etag: str, start: float, period: float, until: float,
                   stats: PollStats) -> None:
    """Polls from `start` until `until` (time.monotonic), one poll every `period` seconds (0: back to back)."""
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        due = start
        while due < until:
            now = time.monotonic()
            if now < due:
                await asyncio.sleep(due - now)
            sent = time.monotonic()
            if not period:
                due = sent
            writer.write(f"{head}If-None-Match: {etag}\r\n\r\n".encode() if etag else f"{head}\r\n".encode())
            try:
                async with asyncio.timeout(10.0):
                    header = await reader.readuntil(b"\r\n\r\n")
                    status, length, new_etag = _parse_head(header)
                    body = await reader.readexactly(length) if length else b""
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as error:
                stats.errors += 1
                if len(stats.first_errors) < 5:
                    stats.first_errors.append(f"{type(error).__name__}: {error}")
                return  # this SDK's connection is gone; the error is counted
            stats.last = done = time.monotonic()
            if status == 304:
                stats.ok304 += 1
            elif status == 200 and body and new_etag:
                stats.ok200 += 1
                etag = new_etag
            else:
                stats.errors += 1
                if len(stats.first_errors) < 5:
                    stats.first_errors.append(f"{status} {body[:200]!r}")
                continue
            stats.latencies.append(done - due)
            stats.service.append(done - sent)
            due += period
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _parse_head(header: bytes) -> tuple[int, int, str]:
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, etag = 0, ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "etag":
            etag = value.strip()
        elif name == "transfer-encoding":
            raise ValueError("chunked answers are not expected here")
    return status, length, etag


def _poll_process(port: int, path: str, sdks: list[tuple[str, str]], start: float, period: float,
                  until: float, seed: int) -> PollStats:
    async def main() -> PollStats:
        stats = PollStats()
        rng = random.Random(seed)
        # Each SDK starts at a random point of its period, so polls spread evenly over time.
        await asyncio.gather(*(_one_sdk(port, path, secret, etag, start + rng.uniform(0, period or 0.01), period,
                                        until, stats) for secret, etag in sdks))
        return stats

    return asyncio.run(main())


@dataclass
class PollResult:
    label: str
    seconds: float
    stats: PollStats
    server_cpu: float = 0.0  # CPU seconds the server's processes used during the run

    @property
    def polls(self) -> int:
        return self.stats.ok200 + self.stats.ok304

    @property
    def rate(self) -> float:
        return self.polls / self.seconds

    def ms(self, q: float, service: bool = False) -> float:
        return 1000 * percentile(self.stats.service if service else self.stats.latencies, q)

    @property
    def cpu_us_per_poll(self) -> float:
        return 1e6 * self.server_cpu / max(self.polls, 1)

    def line(self) -> str:
        s = self.stats
        return (f"{self.label:34} {self.rate:8,.0f} polls/s  p50 {self.ms(0.5):6.2f} ms  p99 {self.ms(0.99):6.2f} ms"
                f" (sent→answered p99 {self.ms(0.99, True):6.2f})  server CPU {self.cpu_us_per_poll:4.0f} µs/poll"
                f"  304 {s.ok304:,}  200 {s.ok200:,}  errors {s.errors}")


def run_pollers(port: int, path: str, sdks: list[tuple[str, str]], *, etags: dict[str, str], rate: float | None,
                seconds: float, procs: int, label: str, seed: int = 1, server_pid: int | None = None) -> PollResult:
    """`sdks` (secret, environment) poll for `seconds`, at `rate` polls/s in all (None: back to back), from
    `procs` processes; each starts with its environment's ETag from `etags`. With `server_pid`, the server's
    CPU time during the run is measured too."""
    cpu_before = process_tree_cpu_seconds(server_pid) if server_pid else 0.0
    period = len(sdks) / rate if rate else 0.0
    start = time.monotonic() + 1.0  # every process connected and waiting by then
    until = start + seconds
    shares = [[(secret, etags.get(environment, "")) for secret, environment in sdks[i::procs]] for i in range(procs)]
    with _FORK.Pool(procs) as pool:
        parts = pool.starmap(_poll_process, [(port, path, share, start, period, until, seed + i)
                                              for i, share in enumerate(shares)])
    stats = PollStats()
    for part in parts:
        stats.merge(part)
    server_cpu = process_tree_cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    # Wall clock to the last answer: a server slower than the offered rate shows as fewer polls/s.
    return PollResult(label, max(stats.last - start, seconds), stats, server_cpu)


# --- events (client processes, httpx) ---------------------------------------------------------------------
_BODIES: list[bytes] = []  # set before the client processes fork


def _post_process(port: int, path: str, indexes: range, secret: str, start: float) -> tuple[int, int, int, list[str]]:
    import httpx

    accepted = duplicate = errors = 0
    first: list[str] = []
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60.0) as http:
        http.post(BARE_PATH, content=b"{}")  # connected before the start
        time.sleep(max(0.0, start - time.monotonic()))
        for index in indexes:
            try:
                response = http.post(path, content=_BODIES[index])
            except httpx.HTTPError as error:
                errors += 1
                first.append(f"{type(error).__name__}: {error}")
                continue
            if response.status_code != 202:
                errors += 1
                first.append(f"{response.status_code} {response.text[:200]}")
                continue
            answer = response.json()
            accepted += answer["accepted"]
            duplicate += answer["duplicate"]
    return accepted, duplicate, errors, first[:5]


@dataclass
class EventsResult:
    label: str
    sent: int
    seconds: float
    accepted: int
    duplicate: int
    errors: int
    first_errors: list[str]

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    def line(self) -> str:
        return (f"{self.label:34} {self.rate:8,.0f} events/s  ({self.sent:,} in {self.seconds:.2f} s; accepted "
                f"{self.accepted:,}, duplicate {self.duplicate:,}, errors {self.errors})")


def run_events(port: int, path: str, bodies: list[bytes], sent: int, *, secret: str, procs: int,
               label: str) -> EventsResult:
    """Post every body once from `procs` processes (each a contiguous share, one connection); wall clock from
    a common start to the last answer."""
    global _BODIES
    _BODIES = bodies
    start = time.monotonic() + 1.0
    share = -(-len(bodies) // procs)
    ranges = [range(i * share, min(len(bodies), (i + 1) * share)) for i in range(procs)]
    with _FORK.Pool(procs) as pool:
        parts = pool.starmap(_post_process, [(port, path, indexes, secret, start) for indexes in ranges])
    seconds = time.monotonic() - start
    _BODIES = []
    return EventsResult(label, sent, seconds, sum(p[0] for p in parts), sum(p[1] for p in parts),
                        sum(p[2] for p in parts), [e for p in parts for e in p[3]][:5])


def encode_batches(plan: str, events: int, batch: int, seed: int) -> tuple[list[bytes], int]:
    batches = make_batches(plan, events, batch, seed)
    return [json.dumps({"events": b}).encode() for b in batches], sum(len(b) for b in batches)


def _bare_etags(bare: dict) -> dict[str, str]:
    """Each environment's current ETag as `bare_config_app` computes it."""
    bumps = int((time.time() - bare["t0"]) // bare["interval"])
    return {environment: f'"{answer["version"] + bumps * (environment in bare["changing"])}"'
            for environment, answer in bare["environments"].items()}


# --- the whole run ------------------------------------------------------------------------------------
def current_etags(port: int, sdks: list[tuple[str, str]]) -> dict[str, str]:
    """The current ETag of each environment, read through the endpoint (which also warms each key)."""
    import httpx

    etags: dict[str, str] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
        for secret, environment in dict(sdks).items():
            response = http.get(CONFIG_PATH, headers={"Authorization": f"Bearer {secret}"})
            response.raise_for_status()
            etags[environment] = response.headers["ETag"]
    return etags


def run_load(*, fixtures: Fixtures, workers: int, threads: int, seconds: float, rate: float, poll_procs: int,
             change_every: float, saturation_seconds: float, events: int, batch: int, event_procs: int,
             seed: int, env: dict | None = None, log=None) -> dict:
    """Everything against one server: bare and Django config polls at `rate`, then back to back, then bare
    and Django events. Django must be set up in this process on the server's database (the plan changes and
    the final counts run here)."""
    from django.db import connection

    connection.close()  # the clients fork from this process
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="cutover-load-") as scratch:
        bare_file = Path(scratch) / "bare-config.json"
        server_env = {**(env if env is not None else os.environ), BARE_CONFIG_ENV: str(bare_file),
                      "CUTOVER_SDK_RATE_LIMITS": RATE_LIMITS}
        server, port = start_server(workers=workers, threads=threads, env=server_env, log=log)
        try:
            etags = current_etags(port, fixtures.sdks)
            secrets = dict(fixtures.sdks)
            recorded = {e: record_config_answer(port, next(s for s, env_ in secrets.items() if env_ == e))
                        for e in ENVIRONMENTS}
            bare = {"secrets": secrets, "environments": recorded, "changing": [CHANGING], "t0": time.time(),
                    "interval": change_every}
            bare_file.write_text(json.dumps(bare))
            poll = {"procs": poll_procs, "server_pid": server.pid}
            # warm-up: every worker thread has Django loaded, its connections open, the keys cached
            run_pollers(port, CONFIG_PATH, fixtures.sdks, rate=rate, seconds=min(2.0, seconds), label="warm-up",
                        etags=etags, **poll)
            run_pollers(port, BARE_CONFIG_PATH, fixtures.sdks, rate=rate, seconds=min(2.0, seconds),
                        label="warm-up", etags=_bare_etags(bare), **poll)

            results["bare_rate"] = run_pollers(port, BARE_CONFIG_PATH, fixtures.sdks, rate=rate, seconds=seconds,
                                               label="bare config, offered rate", etags=_bare_etags(bare), **poll)
            print(results["bare_rate"].line())
            with PlanChanger(fixtures.changing_plan, change_every) as changer:
                results["config_rate"] = run_pollers(port, CONFIG_PATH, fixtures.sdks, rate=rate, seconds=seconds,
                                                     label="GET /api/v1/sdk/config, offered",
                                                     etags=current_etags(port, fixtures.sdks), **poll)
            if changer.error is not None:
                raise RuntimeError(f"plan change failed: {changer.error!r}")
            results["changes"] = changer.changes
            print(results["config_rate"].line() + f"  ({changer.changes} plan changes)")
            if saturation_seconds:
                results["bare_max"] = run_pollers(port, BARE_CONFIG_PATH, fixtures.sdks, rate=None,
                                                  seconds=saturation_seconds, label="bare config, back to back",
                                                  etags=_bare_etags(bare), **poll)
                print(results["bare_max"].line())
                results["config_max"] = run_pollers(port, CONFIG_PATH, fixtures.sdks, rate=None,
                                                    seconds=saturation_seconds, label="config, back to back",
                                                    etags=current_etags(port, fixtures.sdks), **poll)
                print(results["config_max"].line())

            bodies, sent = encode_batches(fixtures.events_plan, events, batch, seed)
            run_events(port, BARE_PATH, bodies[: 4 * event_procs], 0, secret=fixtures.events_secret,
                       procs=event_procs, label="warm-up")
            results["bare_events"] = run_events(port, BARE_PATH, bodies, sent, secret=fixtures.events_secret,
                                                procs=event_procs, label="bare events (reads, 202)")
            print(results["bare_events"].line())
            results["events"] = run_events(port, EVENTS_PATH, bodies, sent, secret=fixtures.events_secret,
                                           procs=event_procs, label="POST /api/v1/sdk/events")
            print(results["events"].line())
        finally:
            stop_server(server)
    rows, requests = stored(fixtures.events_plan)
    connection.close()
    results.update(rows=rows, requests=requests, sent=results["events"].sent)
    results["events_ok"] = (rows == requests == results["events"].accepted == results["events"].sent
                            and results["events"].duplicate == 0 and results["events"].errors == 0)
    results["errors"] = sum(r.stats.errors for k, r in results.items() if isinstance(r, PollResult)) + sum(
        r.errors for r in (results["bare_events"], results["events"]))
    print(f"stored: {rows:,} RequestEvent rows, MetricRollup requests {requests:,}; sent {results['sent']:,} "
          f"({'ok' if results['events_ok'] else 'MISMATCH'})")
    return results


def record(r: dict, args: argparse.Namespace, postgres: str) -> None:
    offered, bare = r["config_rate"], r["bare_rate"]
    events, bare_events = r["events"], r["bare_events"]
    # Kept up: served the whole offered rate (measured to the last answer, so a server that keeps up reads a
    # hair under what was offered; one that falls behind reads well under it).
    kept_up = offered.rate >= KEPT_UP * args.rate
    poll_met = (args.rate >= GOAL_POLLS and kept_up and offered.ms(0.99) <= GOAL_P99_MS
                and not offered.stats.errors)
    rows = [
        "| workload | server | throughput | p50 ms | p99 ms | p99 ms sent→answered | server CPU µs/poll | answers |",
        "|---|---|---:|---:|---:|---:|---:|---|",
        f"| config polls at {args.rate:,}/s offered | **Django** | **{offered.rate:,.0f}/s** | {offered.ms(0.5):.2f} "
        f"| **{offered.ms(0.99):.2f}** | {offered.ms(0.99, True):.2f} | {offered.cpu_us_per_poll:.0f} "
        f"| {offered.stats.ok304:,} × 304, {offered.stats.ok200:,} × 200, "
        f"{offered.stats.errors} errors |",
        f"| | bare | {bare.rate:,.0f}/s | {bare.ms(0.5):.2f} | {bare.ms(0.99):.2f} "
        f"| {bare.ms(0.99, True):.2f} | {bare.cpu_us_per_poll:.0f} | {bare.stats.ok304:,} × 304, "
        f"{bare.stats.ok200:,} × 200, {bare.stats.errors} errors |",
    ]
    if "config_max" in r:
        for name, result in (("**Django**", r["config_max"]), ("bare", r["bare_max"])):
            rows.append(f"| {'config polls back to back' if name != 'bare' else ''} | {name} | {result.rate:,.0f}/s "
                        f"| {result.ms(0.5):.2f} | {result.ms(0.99):.2f} | "
                        f"{result.ms(0.99, True):.2f} | {result.cpu_us_per_poll:.0f} | {result.stats.ok304:,} × 304, "
                        f"{result.stats.ok200:,} × 200, {result.stats.errors} errors |")
    rows += [
        f"| events, batches of {args.batch:,} | **Django → PostgreSQL** | **{events.rate:,.0f} events/s** | | | | | "
        f"{events.accepted:,} accepted, {events.errors} errors |",
        f"| | bare (reads the body, 202) | {bare_events.rate:,.0f} events/s | | | | | {bare_events.errors} errors |",
    ]
    lines = [
        "## Load: config polls and events",
        "",
        f"`bench/load.py` — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, PostgreSQL {postgres}, "
        f"Redis, {os.cpu_count()} CPUs shared by everything (the server, PostgreSQL, Redis, the clients, other "
        f"engineers' jobs). granian (WSGI), {args.workers} workers × {args.threads} threads, DEBUG=0. "
        f"{args.sdks} simulated SDKs on {args.keys} SDK keys across {len(ENVIRONMENTS)} environments, asyncio "
        f"clients in {args.poll_procs} processes, one keep-alive connection per SDK, each polling with "
        f"If-None-Match; the prod plan paused or resumed every {args.change_every:g} s ({r['changes']} changes), "
        f"so those SDKs get a 200 once per change. {args.seconds:g} s per config run; latency from when a poll "
        f"was due (waits in the client's queue count). Events: {r['sent']:,} events posted by {args.event_procs} "
        f"processes. The bare rows are the same server workers answering the same bytes (recorded 200 and 304 "
        f"headers and document) without Django, in the same run.",
        "",
        *rows,
        "",
        f"- Goal ≥ {GOAL_POLLS:,} config polls/s with p99 ≤ {GOAL_P99_MS:g} ms: "
        f"**{'met' if poll_met else 'not met'}** ({args.rate:,}/s offered, {offered.rate:,.0f}/s served"
        f"{' — all of it' if kept_up else ''}, p99 {offered.ms(0.99):.2f} ms).",
        f"- Goal ≥ {GOAL_EVENTS:,} events/s: **{'met' if events.rate >= GOAL_EVENTS else 'not met'}**.",
        f"- No errors: **{'none' if r['errors'] == 0 else r['errors']}**. No event lost: {r['rows']:,} RequestEvent "
        f"rows and {r['requests']:,} requests in MetricRollup for {r['sent']:,} sent "
        f"(**{'ok' if r['events_ok'] else 'MISMATCH'}**).",
        f"- Load average (1 min) on the {os.cpu_count()} CPUs when the run started and when it ended: "
        f"{r['load_average'][0]:.1f} and {r['load_average'][1]:.1f}.",
        *NOTES,
    ]
    write_section(START, END, lines)


NOTES = [
    "- Spread (2026-11-28): three runs in a row on a quiet machine (load average 0.7–2.3) gave p99 9.80, 7.25 "
    "and 13.95 ms at 2,000 polls/s offered, all served; with other engineers' test suites running (load "
    "average 9–12) the same server fell behind (800–1,900/s served, p99 in seconds), as the bare server nearly"
    " did (p99 up to 97 ms).",
    "- Server: granian (WSGI), 2 worker processes (one per core: a process runs Python under one GIL) × 4 "
    "blocking threads, enough to overlap the Redis round trips; more threads only add GIL contention on short "
    "polls (measured: 8 threads cost ~10 % more CPU per poll). Production keeps 32 threads per process for "
    "60 s long-polls (docs/operations.md), which wait without contending.",
    "- The per-key rate limit (`CUTOVER_SDK_RATE_LIMITS`) stays on the path — its cache count is measured — "
    "set far above what the bench's keys send (a simulated SDK polls hundreds of times more often than a real one).",
    "- Where a poll's CPU goes, and what changed (2026-11-28): through Django's middleware and DRF a warm poll "
    "cost 445–580 µs of CPU in-process (three Redis round trips plus dispatch). The config poll's fast path "
    "(`migrations_app/api/config_poll.py`) answers plain polls — 304, and the 200 after a change — from one "
    "EVALSHA (principal, document, rate count) with Django's exact headers: ~150–170 µs in-process. The web "
    "server moved from gunicorn (gthread) to granian: the bare server's CPU per poll, measured here in the same "
    "session, fell from 260–390 µs (gunicorn) to 60–120 µs (granian). Before both changes this bench served "
    "~1,000 polls/s back to back and fell behind at 2,000/s offered.",
    "- The server CPU column is the server processes' user + system time (/proc) over the run divided by the "
    "polls answered: steadier than throughput on a shared machine, though it rises when the CPUs are contended.",
    "- The machine is shared: the clients, PostgreSQL and Redis compete with the server for the same 2 CPUs, "
    "and other engineers' jobs run beside them (load average given above), so p99 reflects CPU queueing as "
    "much as the server; figures swing between runs. An offered rate above what the server sustains makes "
    "every SDK fall further behind for the whole run, hence p50/p99 from when polls were due; the "
    "sent→answered column is the latency of the polls themselves.",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per config run at the offered rate")
    parser.add_argument("--rate", type=int, default=2_000, help="config polls/s offered, all SDKs together")
    parser.add_argument("--saturation-seconds", type=float, default=5.0, help="back-to-back runs; 0 skips them")
    parser.add_argument("--sdks", type=int, default=240)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--poll-procs", type=int, default=2)
    parser.add_argument("--change-every", type=float, default=2.0, help="seconds between plan changes")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--event-procs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes: one per core")
    parser.add_argument("--threads", type=int, default=4, help="server threads per worker")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="cutover_load")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    create_database(args.pg, args.database)
    try:
        django_setup(f"{args.pg}/{args.database}", args.redis)
        from django.core.cache import cache
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        cache.clear()  # the bench's own Redis database: nothing cached from an earlier run
        fixtures = make_fixtures(keys=args.keys, sdks=args.sdks)
        load_before = os.getloadavg()[0]
        results = run_load(fixtures=fixtures, workers=args.workers, threads=args.threads, seconds=args.seconds,
                           rate=args.rate, poll_procs=args.poll_procs, change_every=args.change_every,
                           saturation_seconds=args.saturation_seconds, events=args.events, batch=args.batch,
                           event_procs=args.event_procs, seed=args.seed)
        results["load_average"] = (load_before, os.getloadavg()[0])
    finally:
        close_django_connections()
        drop_database(args.pg, args.database)
    ok = results["events_ok"] and results["errors"] == 0
    if not ok:
        print("FAILED: errors, or events lost or double-counted", file=sys.stderr)
    if not args.no_record:
        record(results, args, pg_version(args.pg))
        print(f"recorded in {DOC.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
