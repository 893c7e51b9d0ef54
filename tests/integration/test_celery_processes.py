"""Real `celery worker` and `celery beat` processes on the configured broker (Redis, or the embedded
file-system broker when REDIS_URL is unset)."""

import time

import pytest
from django.conf import settings
from django.core.cache import cache

from migrations_app.tasks import HEARTBEAT_CACHE_KEY
from tests.support.processes import worker_and_beat


@pytest.mark.django_db(transaction=True)
def test_worker_and_beat__separate_processes__beat_schedules_and_worker_runs_the_heartbeat(tmp_path):
    with worker_and_beat(tmp_path, CUTOVER_HEARTBEAT_SECONDS="0.5") as (worker, beat):
        deadline = time.monotonic() + 60
        beats = set()
        while len(beats) < 2 and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert beat.poll() is None, (tmp_path / "beat.log").read_text()
            if (value := cache.get(HEARTBEAT_CACHE_KEY)) is not None:
                beats.add(value)
            time.sleep(0.1)
    assert len(beats) >= 2, (tmp_path / "worker.log").read_text()[-3000:]
    assert abs(max(beats) - time.time()) < 60
    broker = "redis" if settings.REDIS_URL else "cutoverfs"
    assert settings.CELERY_BROKER_URL.startswith(broker)


@pytest.mark.django_db
def test_readyz__database_and_broker_reachable__ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["checks"] == {"database": "ok", "broker": "ok"}
    assert "scheduler_heartbeat_age_seconds" in body


def test_healthz__always_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_metrics__prometheus_exposition_with_plan_gauges(client):
    from tests import factories

    factories.make_plan()
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert 'cutover_plans{state="draft"} 1.0' in response.content.decode()
