"""Redis restarted under a running control plane: the SDK config is still served (built from the database
while the cache is gone) and every event posted meanwhile is stored exactly once."""

import json
import random

import httpx
import pytest

from migrations_app.models import RequestEvent
from tests import factories
from tests.faults.conftest import rolling_plan
from tests.support.servers import ControlPlane, PrivateRedis
from tests.support.streams import request_events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def test_redis_restarted__config_still_served_and_every_event_stored_once(tmp_path):
    plan = rolling_plan()
    sdk_key = factories.make_sdk_key("prod")
    posted, statuses = [], []
    with PrivateRedis(tmp_path / "redis.log") as redis, ControlPlane(tmp_path / "web.log", redis_url=redis.url) as web:
        client = httpx.Client(base_url=web.url, timeout=10, headers={"Authorization": f"Bearer {sdk_key}"})
        rng = random.Random(1)

        def round_trip(phase: str) -> None:
            config = client.get("/api/v1/sdk/config")
            statuses.append((phase, "config", config.status_code))
            if config.status_code == 200:
                assert [p["key"] for p in json.loads(config.content)["plans"]] == [plan.key]
                etag = config.headers["ETag"]
                unchanged = client.get("/api/v1/sdk/config?wait=0.3", headers={"If-None-Match": etag})
                statuses.append((phase, "long-poll", unchanged.status_code))
            batch = request_events(plan=plan.key, arm=rng.choice(["baseline", "candidate"]), count=20, rng=rng)
            events = client.post("/api/v1/sdk/events", json={"events": batch})
            statuses.append((phase, "events", events.status_code))
            if events.status_code == 202:
                assert events.json() == {"accepted": 20, "duplicate": 0}
                posted.extend(batch)

        for _ in range(5):
            round_trip("up")
        redis.stop()  # the cache, the pub/sub channel and the broker are gone
        for _ in range(5):
            round_trip("down")
        redis.start()  # back, empty: nothing cached
        for _ in range(5):
            round_trip("restarted")
        # Everything again: each event is already stored, so all of it is a duplicate.
        again = client.post("/api/v1/sdk/events", json={"events": posted[:100]})
        client.close()

    assert {status for *_, status in statuses} <= {200, 202, 304}, statuses
    assert again.json() == {"accepted": 0, "duplicate": 100}
    assert RequestEvent.objects.count() == len(posted) == 15 * 20
    assert "cache unavailable" in (tmp_path / "web.log").read_text()
