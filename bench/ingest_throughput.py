"""How many per-request events per second POST /api/v1/sdk/events stores in PostgreSQL, none lost.

Creates a scratch PostgreSQL database (dropped and recreated each run), migrates it, creates a plan and
an SDK key through the services, starts the control plane under granian (WSGI, as in production) with DEBUG=0, and
posts pre-encoded batches of events from a few client threads over loopback. Afterwards it checks that
the stored RequestEvent rows and the sum of MetricRollup.requests both equal the number of events sent.

In the same run, two baselines:
- bare server: the same batches posted to the same server workers, at a path this module's WSGI
  wrapper answers itself (reads the body, answers 202) before Django sees it — HTTP and the server only;
- direct call: `events_ingest` called in this process, no HTTP (validation + SQL only).

The servers are stopped and the scratch database dropped at the end, even on failure.

    .venv/bin/python bench/ingest_throughput.py [--events 200000] [--clients 4] [--workers 2] [--threads 4]

Needs PostgreSQL (trust auth) and Redis; see --pg and --redis.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time

from _harness import (
    BARE_PATH,
    DOC,
    EVENTS_PATH,
    ROOT,
    close_django_connections,
    create_database,
    django_setup,
    drop_database,
    make_batches,
    pg_version,
    start_server,
    stop_server,
    stored,
    write_section,
)

START, END = "<!-- ingest-throughput:start -->", "<!-- ingest-throughput:end -->"
HTTP_PLAN, DIRECT_PLAN = "bench-http", "bench-direct"
# Measured by this script on 2026-11-28, before events were stored with one INSERT … ON CONFLICT.
BEFORE = {"what": "existence SELECT, Django bulk_create and bulk_update", "http": 7_204, "direct": 7_422}


def post_all(port: int, path: str, bodies: list[bytes], clients: int, secret: str) -> tuple[float, list[dict]]:
    """Post every body once, `clients` threads each with its own keep-alive connection; wall-clock seconds."""
    import httpx

    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    lock, cursor, answers, failures = threading.Lock(), iter(range(len(bodies))), [], []

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60.0) as http:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                response = http.post(path, content=bodies[index])
                if response.status_code != 202:
                    failures.append(f"{response.status_code} {response.text[:300]}")
                    return
                answers.append(response.json())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{path}: {len(failures)} failed, first: {failures[0]}")
    return elapsed, answers


def run(args: argparse.Namespace) -> dict:
    django_setup(f"{args.pg}/{args.database}", args.redis)
    from django.core.management import call_command
    from django.db import connection

    from migrations_app.services.ingest import events_ingest
    from tests import factories

    call_command("migrate", verbosity=0)
    factories.make_plan(HTTP_PLAN)
    factories.make_plan(DIRECT_PLAN)
    secret = factories.make_sdk_key("prod")
    environment_id = factories.make_environment("prod").pk
    connection.close()  # the server's workers are separate processes; keep ours from idling in a transaction

    http_batches = make_batches(HTTP_PLAN, args.events, args.batch, args.seed)
    bodies = [json.dumps({"events": batch}).encode() for batch in http_batches]
    sent = sum(len(batch) for batch in http_batches)

    # the server loads `_harness:application`: Django, except BARE_PATH (reads the body, answers 202).
    server, port = start_server(workers=args.workers, threads=args.threads)
    try:
        # Warm up: every worker thread loads Django, opens its database connection and caches the key.
        warm = make_batches(HTTP_PLAN + "-warm", args.batch * args.workers * args.threads, args.batch, args.seed + 1)
        factories.make_plan(HTTP_PLAN + "-warm")
        connection.close()
        post_all(port, EVENTS_PATH, [json.dumps({"events": b}).encode() for b in warm], args.clients, secret)
        post_all(port, BARE_PATH, bodies[: args.workers * args.threads], args.clients, secret)

        bare_seconds, _ = post_all(port, BARE_PATH, bodies, args.clients, secret)
        print(f"bare server:  {sent / bare_seconds:10,.0f} events/s  ({len(bodies)} batches in {bare_seconds:.2f} s)")
        ours_seconds, answers = post_all(port, EVENTS_PATH, bodies, args.clients, secret)
        accepted = sum(answer["accepted"] for answer in answers)
        duplicate = sum(answer["duplicate"] for answer in answers)
        print(f"ingest HTTP:  {sent / ours_seconds:10,.0f} events/s  ({len(bodies)} batches in {ours_seconds:.2f} s;"
              f" accepted {accepted:,}, duplicate {duplicate:,})")
    finally:
        stop_server(server)

    rows, requests = stored(HTTP_PLAN)
    print(f"stored:       {rows:,} events, rollups count {requests:,} requests; sent {sent:,}")

    direct_batches = make_batches(DIRECT_PLAN, args.direct_events, args.batch, args.seed + 2)
    payloads = [json.loads(json.dumps({"events": batch})) for batch in direct_batches]
    direct_sent = sum(len(batch) for batch in direct_batches)
    started = time.perf_counter()
    for payload in payloads:
        events_ingest(environment_id=environment_id, payload=payload)
    direct_seconds = time.perf_counter() - started
    direct_rows, direct_requests = stored(DIRECT_PLAN)
    print(f"direct call:  {direct_sent / direct_seconds:10,.0f} events/s  ({len(payloads)} batches in "
          f"{direct_seconds:.2f} s; stored {direct_rows:,}, rollups {direct_requests:,})")
    connection.close()

    return {
        "sent": sent, "ours": sent / ours_seconds, "ours_seconds": ours_seconds, "accepted": accepted,
        "duplicate": duplicate, "rows": rows, "requests": requests, "bare": sent / bare_seconds,
        "bare_seconds": bare_seconds, "direct": direct_sent / direct_seconds, "direct_sent": direct_sent,
        "direct_ok": direct_rows == direct_requests == direct_sent,
        "ok": rows == requests == accepted == sent and duplicate == 0,
    }


def record(r: dict, args: argparse.Namespace, postgres: str) -> None:
    lines = [
        "## Ingest throughput",
        "",
        f"`bench/ingest_throughput.py` — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"PostgreSQL {postgres}, {os.cpu_count()} CPUs shared by everything (server, database, client). "
        f"granian (WSGI), {args.workers} workers × {args.threads} threads, DEBUG=0, Redis cache; "
        f"{r['sent']:,} events as batches of {args.batch:,} (pre-encoded JSON, 90 % baseline / 10 % candidate, "
        f"one minute), posted by {args.clients} httpx client threads with keep-alive over loopback; wall clock.",
        "",
        "| path | events/s | time |",
        "|---|---:|---:|",
        f"| **POST /api/v1/sdk/events → PostgreSQL** | **{r['ours']:,.0f}** | {r['ours_seconds']:.1f} s |",
        f"| bare endpoint, same server (reads the body, answers 202) | {r['bare']:,.0f} | {r['bare_seconds']:.1f} s |",
        f"| `events_ingest` called directly, no HTTP ({r['direct_sent']:,} events, one thread) "
        f"| {r['direct']:,.0f} | — |",
        "",
        f"- Goal ≥ 10,000 events/s through HTTP: **{'met' if r['ours'] >= 10_000 else 'not met'}**.",
        f"- None lost, none double-counted: {r['rows']:,} RequestEvent rows and {r['requests']:,} requests in "
        f"MetricRollup for {r['sent']:,} sent ({'ok' if r['ok'] else 'MISMATCH'}).",
        f"- Before the ingest rewrite ({BEFORE['what']}), the same script measured {BEFORE['http']:,} events/s "
        f"through HTTP and {BEFORE['direct']:,} calling `events_ingest` directly.",
        "- The machine is shared and noisy: figures vary by ±15 % from run to run.",
    ]
    write_section(START, END, lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--direct-events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (one per core)")
    parser.add_argument("--threads", type=int, default=4, help="server threads per worker")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="cutover_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    create_database(args.pg, args.database)
    try:
        results = run(args)
    finally:
        close_django_connections()
        drop_database(args.pg, args.database)
    if not results["ok"] or not results["direct_ok"]:
        print("MISMATCH: events lost or double-counted", file=sys.stderr)
    if not args.no_record:
        record(results, args, pg_version(args.pg))
        print(f"recorded in {DOC.relative_to(ROOT)}")
    return 0 if results["ok"] and results["direct_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
