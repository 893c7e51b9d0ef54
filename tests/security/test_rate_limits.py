"""Rate limits on the SDK endpoints, per SDK key and scope, from the cache (the poll stays SQL-free)."""

import json
import random
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from rest_framework.test import APIClient

from migrations_app.api.throttling import parse_rate
from migrations_app.models import RequestEvent
from tests import factories
from tests.support.streams import request_events

pytestmark = pytest.mark.django_db

CONFIG, EVENTS = "/api/v1/sdk/config", "/api/v1/sdk/events"


def sdk(secret: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")


def event_batch(plan_key: str) -> str:
    events = request_events(plan=plan_key, arm="baseline", count=1, rng=random.Random(uuid.uuid4().int))
    return json.dumps({"events": events}, default=str)


@pytest.mark.parametrize(("rate", "parsed"), [("1200/min", (1200, 60)), ("10/s", (10, 1)), ("5/hour", (5, 3600)),
                                              ("3/10s", (3, 10)), ("0", None), (None, None), ("", None)])
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed


def test_parse_rate__nonsense__refused():
    with pytest.raises(ValueError):
        parse_rate("many/fortnight")


def test_defaults__generous_per_key_limits_on_every_sdk_endpoint(settings):
    limits = {scope: parse_rate(rate) for scope, rate in settings.CUTOVER_SDK_RATE_LIMITS.items()}
    assert limits["config"] == (1200, 60) and limits["events"] == (600, 60)
    assert limits["feedback"] and limits["shadow"]


@override_settings(CUTOVER_SDK_RATE_LIMITS={"config": "3/min", "events": "2/min"})
def test_config__over_the_limit__429_with_retry_after_and_other_keys_unaffected(plan):
    first, second = factories.make_sdk_key("prod"), factories.make_sdk_key("prod")
    answers = [sdk(first).get(CONFIG) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60
    assert "throttled" in answers[-1].json()["detail"].lower()
    assert sdk(second).get(CONFIG).status_code == 200


@override_settings(CUTOVER_SDK_RATE_LIMITS={"config": "3/min", "events": "2/min"})
def test_events__over_the_limit__429_and_the_batch_not_stored(plan):
    secret = factories.make_sdk_key("prod")
    statuses = [sdk(secret).post(EVENTS, event_batch(plan.key), content_type="application/json").status_code
                for _ in range(3)]
    assert statuses == [202, 202, 429]
    assert RequestEvent.objects.count() == 2


@override_settings(CUTOVER_SDK_RATE_LIMITS={"config": "2/min", "events": "0"})
def test_scopes_counted_apart__events_unlimited_when_set_to_zero(plan):
    secret = factories.make_sdk_key("prod")
    assert [sdk(secret).get(CONFIG).status_code for _ in range(3)] == [200, 200, 429]
    statuses = {sdk(secret).post(EVENTS, event_batch(plan.key), content_type="application/json").status_code
                for _ in range(5)}
    assert statuses == {202}


@override_settings(CUTOVER_SDK_RATE_LIMITS={"config": "1000/min"})
def test_config__limited_and_cache_warm__still_zero_sql(plan):
    secret = factories.make_sdk_key("prod")
    client = sdk(secret)
    assert client.get(CONFIG).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get(CONFIG).status_code == 200
    assert len(queries) == 0


@override_settings(CUTOVER_SDK_RATE_LIMITS={"config": "1/min"})
def test_cache_down__requests_let_through(plan, monkeypatch):
    from django.core.cache import cache

    secret = factories.make_sdk_key("prod")
    assert sdk(secret).get(CONFIG).status_code == 200

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "incr", down)
    monkeypatch.setattr(cache, "add", down)
    assert sdk(secret).get(CONFIG).status_code == 200
