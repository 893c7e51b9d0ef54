"""Shadow comparisons per second of one and of two Celery worker processes, when the simulated models answer
in 200 ms.

Creates a scratch PostgreSQL database (dropped and recreated), migrates it, makes a plan whose baseline and
candidate are models on a loopback simulator (started in this process, fixed 200 ms latency; the candidate
mirrors the baseline and alters 30 % of prompts), then for each configuration:

1. stores N shadow samples through `shadow_sample_ingest` (the POST /api/v1/sdk/shadow service), which
   enqueues one `shadow_compare` task per sample on Redis when it commits;
2. starts the worker process(es): `celery worker --pool=threads --concurrency=C`;
3. waits until N comparisons are stored, and reports comparisons per second between the first and the last
   stored (worker start-up excluded) plus the simulator's call count.

The plan re-asks the baseline on 20 % of samples (noise floor), so one comparison is 1.2 provider calls on
average. The per-provider token bucket is disabled (rate 0) so the figure is the worker's, not the limit's.

    .venv/bin/python bench/shadow_throughput.py [--samples 3000] [--concurrency 64] [--record]

Needs PostgreSQL (trust auth) and Redis; see --pg and --redis.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- shadow-throughput:start -->", "<!-- shadow-throughput:end -->"
DB = "cutover_bench_shadow"
SIM_KEY_ENV = "CUTOVER_BENCH_SIM_KEY"
NOTE = ("The worker is CPU-bound, not wait-bound: one comparison costs ~10 ms of CPU across the openai SDK call, "
        "Celery's Redis round trip and ~5 SQL statements, so on a 2-CPU host shared with the simulator, PostgreSQL "
        "and other jobs a second process adds little. More cores (one worker process per core) scale it.")


def _admin(pg: str):
    import psycopg

    return psycopg.connect(f"{pg}/postgres", autocommit=True)


def recreate_database(pg: str) -> None:
    with _admin(pg) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')


def drop_database(pg: str) -> None:
    with _admin(pg) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_plan(simulator, key: str):
    from migrations_app.services.endpoints import endpoint_create
    from migrations_app.services.evaluation import plan_quality_settings_update
    from migrations_app.services.plans import plan_create
    from migrations_app.services.sdk_keys import environment_get_or_create

    def endpoint(model: str):
        return endpoint_create(actor="bench", name=f"{key}-{model}", provider="openai", model=model,
                               base_url=simulator.openai_base_url, api_key_env=SIM_KEY_ENV,
                               input_price_per_mtok=3, output_price_per_mtok=15, context_window=128000,
                               default_params={})

    plan = plan_create(actor="bench", key=key, environment=environment_get_or_create(name="bench", actor="bench"),
                       baseline=endpoint("bench-base"), candidate=endpoint("bench-cand"))
    return plan_quality_settings_update(actor="bench", plan=plan, noise_floor_fraction=0.2)


def ingest(plan, count: int) -> float:
    from migrations_app.services.shadow import shadow_sample_ingest

    started = time.perf_counter()
    for i in range(count):
        shadow_sample_ingest(environment_id=plan.environment_id, payload={
            "plan": plan.key, "request_id": str(uuid.uuid4()), "segment": ("billing", "shipping")[i % 2],
            "request": {"messages": [{"role": "user", "content": f"Where is order {i}? It is late."}]},
            "baseline": {"text": "Your order ships within two days.", "latency_ms": 200.0, "input_tokens": 12,
                         "output_tokens": 8, "model": "bench-base"}})
    return time.perf_counter() - started


def start_workers(n: int, concurrency: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen]:
    workers = []
    for index in range(n):
        log = (logs / f"bench-worker-{index}.log").open("w")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool=threads",
             f"--concurrency={concurrency}", "--loglevel=WARNING", f"--hostname=bench{index}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=os.environ | env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def measure(plan, simulator, *, processes: int, samples: int, concurrency: int, env: dict[str, str],
            timeout: float) -> dict:
    from migrations_app.models import ShadowComparison

    ingest_seconds = ingest(plan, samples)
    calls_before = sum(sum(c.values()) for c in simulator.stats().values())
    workers = start_workers(processes, concurrency, env, ROOT / "var")
    try:
        deadline = time.monotonic() + timeout
        while ShadowComparison.objects.filter(plan=plan).count() < samples:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ShadowComparison.objects.filter(plan=plan).count()} of {samples} "
                                   f"comparisons after {timeout} s; see var/bench-worker-*.log")
            time.sleep(0.25)
    finally:
        stop_workers(workers)
    times = sorted(ShadowComparison.objects.filter(plan=plan).values_list("created_at", flat=True))
    span = (times[-1] - times[0]).total_seconds()
    calls = sum(sum(c.values()) for c in simulator.stats().values()) - calls_before
    return {"processes": processes, "samples": samples, "concurrency": concurrency, "seconds": span,
            "per_second": (samples - 1) / span if span else float("inf"), "calls": calls,
            "ingest_per_second": samples / ingest_seconds}


def record(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        START,
        "## Shadow comparisons per second",
        "",
        f"`bench/shadow_throughput.py` — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, PostgreSQL + Redis on loopback, simulator in the bench process answering every "
        f"call in {args.latency_ms:g} ms. Each sample: one candidate call, plus a second baseline call on 20 % of "
        f"samples (noise floor), scored and stored once. Workers: `celery worker --pool=threads "
        f"--concurrency={args.concurrency}`; the per-provider bucket off. {args.samples} samples per run; rate "
        "measured from the first stored comparison to the last (start-up excluded).",
        "",
        "| worker processes | comparisons/s | provider calls | seconds |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['processes']} | {r['per_second']:,.0f} | {r['calls']:,} | {r['seconds']:.1f} |" for r in results]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines += ["", f"Goal: ≥ 100 comparisons/s for one worker process — "
                  f"{'met' if results[0]['per_second'] >= 100 else 'not met'} here. Load average at the end of the "
                  f"run: {load} (other processes included). {NOTE}", END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=40,
                        help="threads per worker process (each holds a database connection)")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--processes", default="1,2", help="worker process counts to measure")
    parser.add_argument("--record", action="store_true", help="write the result into docs/benchmarks.md")
    args = parser.parse_args()

    recreate_database(args.pg)
    env = {"DATABASE_URL": f"{args.pg}/{DB}", "REDIS_URL": args.redis, "SECRET_KEY": "bench-only",
           "DJANGO_SETTINGS_MODULE": "controlplane.settings", "CUTOVER_OFFLINE_RATE_LIMITS": "default=0",
           SIM_KEY_ENV: "sim-key", "CONN_MAX_AGE": "60"}
    import redis

    redis.Redis.from_url(args.redis).flushdb()
    from cutover.simulator import Scenario, SimulatorServer

    scenario = Scenario.from_dict({"seed": 1, "default": {"latency": {"median_ms": args.latency_ms}}, "models": {
        "bench-cand": {"latency": {"median_ms": args.latency_ms},
                       "answer": {"kind": "mirror", "mirror_model": "bench-base", "alter_fraction": 0.3}}}})
    results = []
    try:
        with SimulatorServer(scenario) as simulator:
            setup_django(env)
            for processes in [int(p) for p in args.processes.split(",")]:
                plan = make_plan(simulator, f"bench-{processes}")
                result = measure(plan, simulator, processes=processes, samples=args.samples,
                                 concurrency=args.concurrency, env=env, timeout=args.timeout)
                print(f"{processes} worker process(es): {result['per_second']:.1f} comparisons/s "
                      f"({result['samples']} in {result['seconds']:.1f} s, {result['calls']} provider calls; "
                      f"ingest {result['ingest_per_second']:.0f}/s)", flush=True)
                results.append(result)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(args.pg)
    section = record(results, args)
    print(section)
    if args.record:
        text = DOC.read_text()
        if START in text:
            text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        DOC.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
