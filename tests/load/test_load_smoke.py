"""A short smoke run of bench/load.py's harness: config pollers (mostly 304s, some 200s after plan changes)
and event batches from several processes, against the control plane under granian on this run's PostgreSQL
test database and Redis, next to the bare server. It checks for errors and lost events, with throughput
floors far below the goals (those are the bench's: `.venv/bin/python bench/load.py`)."""

import sys

import pytest
from django.conf import settings

from tests.support.processes import ROOT, celery_env

sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402  (bench/load.py)

on_postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(not (on_postgres and settings.REDIS_URL),
                       reason="the load smoke runs on PostgreSQL + Redis only (set DATABASE_URL and REDIS_URL); "
                              "the embedded SQLite and file cache are not what it measures"),
]


@pytest.mark.timeout(90)
def test_load_smoke__pollers_and_event_batches__no_errors_none_lost(transactional_db, tmp_path):
    fixtures = load.make_fixtures(keys=4, sdks=40, prefix="smoke")
    with (tmp_path / "server.log").open("w") as log:
        results = load.run_load(
            fixtures=fixtures, workers=1, threads=4, seconds=2.0, rate=200, poll_procs=1, change_every=0.5,
            saturation_seconds=0, events=6_000, batch=500, event_procs=2, seed=7, env=celery_env(), log=log)
    config, bare = results["config_rate"], results["bare_rate"]
    assert results["errors"] == 0, [r.stats.first_errors for r in (config, bare)] + [
        results["events"].first_errors, (tmp_path / "server.log").read_text()[-2000:]]
    assert results["events_ok"], (results["rows"], results["requests"], results["sent"], results["events"].line())
    assert results["changes"] >= 1 and config.stats.ok200 > 0 and config.stats.ok304 > config.stats.ok200
    # Loose floors (offered 200 polls/s; the goals are 2,000 polls/s and 10,000 events/s on the bench).
    assert config.rate >= 50 and bare.rate >= 50, (config.line(), bare.line())
    assert results["events"].rate >= 500, results["events"].line()
