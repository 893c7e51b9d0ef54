"""`manage.py demo --until-done`: the whole stack (simulator, web server, worker, beat, sidecar, an application on
the official openai client, a webhook sink) rehearses a migration and exits with a JSON summary.

It runs as a subprocess on a database and broker of its own: on the embedded defaults a var directory in
tmp_path; when the suite runs on PostgreSQL and Redis, a scratch database (<suite database>_demo, created and
dropped here) and another Redis db (the suite's + 8, flushed before and after), so it never touches the test
database or the suite's queues and cache.
"""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def scratch_postgres(url: str):
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'cutover'}_demo"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_redis(url: str):
    import redis

    parts = urlsplit(url)
    db = (int(parts.path.lstrip("/") or 0) + 8) % 16
    scratch = urlunsplit(parts._replace(path=f"/{db}"))
    client = redis.Redis.from_url(scratch)
    client.flushdb()
    try:
        yield scratch
    finally:
        client.flushdb()
        client.close()


@contextmanager
def demo_backends():
    """DATABASE_URL / REDIS_URL for the demo: scratch ones when the suite runs on PostgreSQL and Redis."""
    extra: dict[str, str] = {}
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    with (scratch_postgres(database_url) if database_url.startswith("postgres") else _nothing()) as db, \
            (scratch_redis(redis_url) if redis_url else _nothing()) as broker:
        if db:
            extra["DATABASE_URL"] = db
        if broker:
            extra["REDIS_URL"] = broker
        yield extra


@contextmanager
def _nothing():
    yield None


@pytest.mark.timeout(400)
def test_demo_until_done__rehearses_the_migration_rolls_back_and_alerts(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"DJANGO_SETTINGS_MODULE": "controlplane.settings", "DEBUG": "1",
            "CUTOVER_VAR_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT)}
    with demo_backends() as backends:
        result = subprocess.run([sys.executable, "manage.py", "demo", "--until-done"], cwd=ROOT,
                                env=env | backends, capture_output=True, text=True, timeout=380)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])

    assert summary["ok"] is True and summary["rolled_back"] is True and summary["alert_received"] is True
    assert summary["database"] == ("PostgreSQL" if "DATABASE_URL" in backends else "SQLite")
    steps = [(phase["state"], phase["candidate_percent"]) for phase in summary["phases"]]
    assert steps[-5:] == [("evaluating", 0), ("shadowing", 0), ("rolling_out", 5), ("rolling_out", 25),
                          ("rolled_back", 0)]
    assert all(phase["seconds"] >= 0 for phase in summary["phases"])
    assert summary["rolled_back_by"] == "system:health-checker"
    assert summary["alert"]["signature_verified"] is True
    assert summary["requests"]["sent"] > 500 and summary["requests"]["by_outcome"].get("candidate_ok", 0) > 0
    # Progress showed as it happened, and every child process is gone.
    assert "advance → rolling_out at 25 %" in result.stdout and "webhook sink received alert.trigger" in result.stdout
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "var")], capture_output=True, text=True).stdout
    assert not leftovers.strip(), leftovers
