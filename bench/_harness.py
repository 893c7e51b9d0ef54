"""Shared pieces of the benches that drive the control plane under granian (its production server): a
scratch PostgreSQL database, the server (with bench-only bare endpoints in front of Django), synthetic event
batches, what got stored, and a docs section between markers. Used by bench/ingest_throughput.py,
bench/load.py and tests/load/.

The server loads `_harness:application` (bench/ on PYTHONPATH): Django's WSGI app, except two bare paths this
module answers itself before Django sees the request (HTTP and the server only):
- BARE_PATH: reads the whole body and answers 202, as POST /api/v1/sdk/events does;
- BARE_CONFIG_PATH: replays the bytes GET /api/v1/sdk/config answered (200 with the document, or 304),
  recorded by the bench in the file named by $CUTOVER_BENCH_BARE_CONFIG (see `bare_config_app`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
BARE_PATH = "/__bench__/bare"
BARE_CONFIG_PATH = "/__bench__/config"
EVENTS_PATH = "/api/v1/sdk/events"
CONFIG_PATH = "/api/v1/sdk/config"
BARE_CONFIG_ENV = "CUTOVER_BENCH_BARE_CONFIG"


# --- the server side ---------------------------------------------------------------------------------
_django_app = None
_bare_config: dict | None = None


def _bare_events(environ, start_response):
    stream, remaining = environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0)
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)
    body = b'{"accepted": 0, "duplicate": 0}'
    start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def bare_config_app(environ, start_response):
    """The config endpoint's bytes without Django: the recorded 200 (headers and document) or 304 (headers)
    of the key's environment. A version bump every `interval` seconds from `t0` on the environments listed
    in `changing` stands in for the plan changes the bench makes while Django serves, so clients get 200s
    as often. The file is read once per worker, on the first request."""
    global _bare_config
    if _bare_config is None:
        _bare_config = json.loads(Path(os.environ[BARE_CONFIG_ENV]).read_text())
    recorded = _bare_config
    secret = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
    environment = recorded["secrets"].get(secret)
    if environment is None:
        start_response("401 Unauthorized", [("Content-Length", "0")])
        return [b""]
    answer = recorded["environments"][environment]
    version = answer["version"]
    if environment in recorded["changing"]:
        version += int((time.time() - recorded["t0"]) // recorded["interval"])
    etag = f'"{version}"'
    tag = environ.get("HTTP_IF_NONE_MATCH", "")
    if tag == etag:
        start_response("304 Not Modified", [*map(tuple, answer["headers_304"]), ("ETag", etag)])
        return [b""]
    body = answer["body"].encode()
    start_response("200 OK", [*map(tuple, answer["headers_200"]), ("ETag", etag)])
    return [body]


def application(environ, start_response):
    """Django's WSGI app, except the bare paths (the same server without Django)."""
    global _django_app
    path = environ.get("PATH_INFO")
    if path == BARE_CONFIG_PATH:
        return bare_config_app(environ, start_response)
    if path == BARE_PATH:
        return _bare_events(environ, start_response)
    if _django_app is None:
        from controlplane.wsgi import application as django_application  # what the server runs in production

        _django_app = django_application
    return _django_app(environ, start_response)


def record_config_answer(port: int, secret: str) -> dict:
    """The config endpoint's 200 and 304 for this key, as `bare_config_app` replays them: headers without
    those the server adds itself (Date, Server, Connection) and without the ETag (the bare app sets it)."""
    import httpx

    skip = {"date", "server", "connection", "etag", "transfer-encoding"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
        full = http.get(CONFIG_PATH, headers={"Authorization": f"Bearer {secret}"})
        unchanged = http.get(CONFIG_PATH, headers={"Authorization": f"Bearer {secret}",
                                                   "If-None-Match": full.headers["ETag"]})
    if full.status_code != 200 or unchanged.status_code != 304:
        raise RuntimeError(f"config endpoint answered {full.status_code} and {unchanged.status_code}")
    return {
        "version": int(full.headers["ETag"].strip('"')), "body": full.content.decode(),
        "headers_200": [[k.decode(), v.decode()] for k, v in full.headers.raw if k.decode().lower() not in skip],
        "headers_304": [[k.decode(), v.decode()] for k, v in unchanged.headers.raw
                        if k.decode().lower() not in skip],
    }


# --- databases ---------------------------------------------------------------------------------------
def _admin_connect(pg: str):
    import psycopg

    return psycopg.connect(f"{pg}/postgres", autocommit=True)


def create_database(pg: str, name: str) -> None:
    with _admin_connect(pg) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(pg: str, name: str) -> None:
    with _admin_connect(pg) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_version(pg: str) -> str:
    with _admin_connect(pg) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def django_setup(database_url: str, redis_url: str) -> None:
    """Production settings (DEBUG=0) on the scratch database, in this process and the servers it starts."""
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "controlplane.settings", "DATABASE_URL": database_url,
        "REDIS_URL": redis_url, "DEBUG": "0", "SECRET_KEY": "bench-only-not-a-secret",
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
    })
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def close_django_connections() -> None:
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()


# --- the server (granian, as in production) ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(*, workers: int, threads: int, env: dict | None = None, log=None,
                 timeout: float = 30.0) -> tuple[subprocess.Popen, int]:
    """granian (WSGI, `workers` processes × `threads` blocking threads, as docker/Dockerfile runs the web
    process) serving `_harness:application` on a free loopback port, answering; (process, port).
    `env`: the servers' environment (default: this process's)."""
    port = free_port()
    env = {**(env if env is not None else os.environ), "PYTHONWARNINGS": "ignore:No directory at",  # no collectstatic
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", "_harness:application", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--blocking-threads", str(threads), "--no-ws",
               "--log-level", "warning", "--backlog", "2048"]
    server = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True, stdout=log, stderr=log)
    try:
        wait_until_up(port, server, timeout)
    except BaseException:
        stop_server(server)
        raise
    return server, port


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the server's main process and its workers), from
    /proc: a steadier measure than throughput on a shared machine."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def wait_until_up(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            httpx.post(f"http://127.0.0.1:{port}{BARE_PATH}", content=b"{}", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout:g} s")


# --- events --------------------------------------------------------------------------------------------
def make_batches(plan: str, total: int, size: int, seed: int) -> list[list[dict]]:
    from tests.support.streams import batches, request_events

    rng = random.Random(seed)
    events = []
    for arm, share in (("baseline", 0.9), ("candidate", 0.1)):
        events += request_events(plan=plan, arm=arm, count=round(total * share), rng=rng)
    rng.shuffle(events)
    return batches(events[:total], size)


def stored(plan_key: str) -> tuple[int, int]:
    """(RequestEvent rows, sum of MetricRollup.requests) of the plan."""
    from django.db.models import Sum

    from migrations_app.models import MetricRollup, RequestEvent

    rows = RequestEvent.objects.filter(plan__key=plan_key).count()
    requests = MetricRollup.objects.filter(plan__key=plan_key).aggregate(total=Sum("requests"))["total"] or 0
    return rows, requests


# --- figures -------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def write_section(start: str, end: str, lines: list[str]) -> None:
    """Replace the docs section between the markers (appended when absent); the rest is left alone."""
    section = "\n".join([start, *lines, end])
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
