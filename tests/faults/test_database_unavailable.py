"""PostgreSQL unreachable (a proxy between the control plane and the database is cut): the events endpoint
answers 503 with Retry-After, the SDK's reporter keeps the batch and delivers it once the database is back."""

import random

import httpx
import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import RequestFactory

from cutover.sdk.reporter import event_reporter
from migrations_app.api.errors import DatabaseUnavailableMiddleware
from migrations_app.models import RequestEvent
from tests import factories
from tests.faults.conftest import requires_postgres, rolling_plan
from tests.support.servers import ControlPlane, wait_until
from tests.support.streams import request_events
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def test_database_error_on_any_backend__sdk_endpoints_and_pages_answer_503_with_retry_after(client, monkeypatch):
    """The mapping itself, on every database backend (the proxy test below needs PostgreSQL)."""
    plan = rolling_plan()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {factories.make_sdk_key('prod')}"}
    assert client.get("/api/v1/sdk/config", **headers).status_code == 200  # the key is cached now

    def unreachable(*_, **__):
        raise OperationalError("connection refused")

    # Ingest's first query fails as it would with the database gone (the key is served from the cache).
    monkeypatch.setattr("migrations_app.services.ingest._environment_plans", unreachable)
    response = client.post("/api/v1/sdk/events", {"events": request_events(
        plan=plan.key, arm="baseline", count=1, rng=random.Random(1))}, content_type="application/json", **headers)
    assert response.status_code == 503 and response["Retry-After"].isdigit()
    # Views outside DRF (the admin) get the same answer from the middleware.
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    page = middleware.process_exception(RequestFactory().get("/admin/"), InterfaceError("connection already closed"))
    assert page.status_code == 503 and page["Retry-After"].isdigit()
    assert middleware.process_exception(RequestFactory().get("/admin/"), ValueError("a bug")) is None


@pytest.mark.postgres
@requires_postgres


def test_database_cut__events_503_with_retry_after__reporter_keeps_the_batch_and_delivers_it_once(tmp_path):
    plan = rolling_plan()
    sdk_key = factories.make_sdk_key("prod")
    db = connection.settings_dict
    rng = random.Random(2)
    with TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as proxy, ControlPlane(
            tmp_path / "web.log", database_url=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}") as web:
        headers = {"Authorization": f"Bearer {sdk_key}"}
        warm = httpx.post(f"{web.url}/api/v1/sdk/events", headers=headers, timeout=10,
                          json={"events": request_events(plan=plan.key, arm="baseline", count=5, rng=rng)})
        assert warm.status_code == 202
        assert httpx.get(f"{web.url}/api/v1/sdk/config", headers=headers, timeout=10).status_code == 200

        proxy.cut()
        refused = httpx.post(f"{web.url}/api/v1/sdk/events", headers=headers, timeout=10,
                             json={"events": request_events(plan=plan.key, arm="baseline", count=5, rng=rng)})
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit(), refused.text
        assert refused.json()["code"] == "database_unavailable"
        # The config document and the key are cached: SDKs keep polling without the database.
        assert httpx.get(f"{web.url}/api/v1/sdk/config", headers=headers, timeout=10).status_code == 200
        # A key never seen before needs the database: 503, not 401 and not 500.
        unknown = httpx.get(f"{web.url}/api/v1/sdk/config", headers={"Authorization": "Bearer not-cached"},
                            timeout=10)
        assert unknown.status_code == 503

        reporter = event_reporter(web.url, sdk_key, flush_interval=0.05, backoff_base=0.05, backoff_max=0.2).start()
        batch = request_events(plan=plan.key, arm="candidate", count=30, rng=rng)
        try:
            for event in batch:
                reporter.record(event)
            wait_until(lambda: reporter.stats.failures >= 2, 20, "two failed deliveries")
            assert reporter.stats.sent == 0 and reporter.pending == 30 and reporter.stats.dropped == 0
            proxy.restore()
            assert reporter.flush(timeout=20), reporter.stats
        finally:
            reporter.close(timeout=5)

    assert (reporter.stats.sent, reporter.stats.dropped, reporter.stats.rejected) == (30, 0, 0)
    assert RequestEvent.objects.filter(arm="candidate").count() == 30
    assert RequestEvent.objects.count() == 35
    assert proxy.refused > 0
