"""Real `celery worker` and `celery beat` processes on the configured broker (Redis, or the embedded
file-system broker when REDIS_URL is unset)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from migrations_app.tasks import HEARTBEAT_CACHE_KEY

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str, log: Path) -> subprocess.Popen:
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "tests.settings", "CUTOVER_HEARTBEAT_SECONDS": "0.5"}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", *args, "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_worker_and_beat__separate_processes__beat_schedules_and_worker_runs_the_heartbeat(tmp_path):
    worker = start("worker", "--pool=solo", "--concurrency=1", log=tmp_path / "worker.log")
    beat = start("beat", "--schedule", str(tmp_path / "beat-schedule"), log=tmp_path / "beat.log")
    try:
        deadline = time.monotonic() + 60
        beats = set()
        while len(beats) < 2 and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert beat.poll() is None, (tmp_path / "beat.log").read_text()
            if (value := cache.get(HEARTBEAT_CACHE_KEY)) is not None:
                beats.add(value)
            time.sleep(0.1)
    finally:
        stop(beat)
        stop(worker)
    assert len(beats) >= 2, (tmp_path / "worker.log").read_text()[-3000:]
    assert abs(max(beats) - time.time()) < 60
    broker = "redis" if settings.REDIS_URL else "filesystem"
    assert settings.CELERY_BROKER_URL.startswith(broker)


@pytest.mark.django_db
def test_readyz__database_and_broker_reachable__ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_healthz__always_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_metrics__prometheus_exposition_with_plan_gauges(client):
    from tests import factories

    factories.make_plan()
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert 'cutover_plans{state="draft"} 1.0' in response.content.decode()
