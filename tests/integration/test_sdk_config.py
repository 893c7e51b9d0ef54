"""GET /api/v1/sdk/config: the document every SDK and sidecar polls."""

import json
import os
import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from migrations_app.models import SDKKey
from migrations_app.services.plans import plan_act
from migrations_app.services.sdk_keys import sdk_key_revoke
from tests import factories

CONFIG = "/api/v1/sdk/config"


def sdk_get(secret: str, **headers):
    query = headers.pop("query", "")
    return APIClient().get(CONFIG + query, HTTP_AUTHORIZATION=f"Bearer {secret}", **headers)


@pytest.fixture
def live_plan(transactional_db):
    plan = factories.make_plan(candidate_prompt_adapter="claude-v1")
    plan_act(actor="test", plan_key=plan.key, action="start")
    return plan


def test_config__live_plan__interfaces_document_without_secrets(live_plan, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-openai-secret-value-0001")
    secret = factories.make_sdk_key("prod")
    response = sdk_get(secret)
    assert response.status_code == 200
    document = response.json()
    assert document["environment"] == "prod" and document["version"] >= 2
    assert response["ETag"] == f'"{document["version"]}"'
    [plan] = document["plans"]
    assert {k: plan[k] for k in ("key", "state", "candidate_percent", "rollback", "shadow_sample_rate")} == {
        "key": "support-bot", "state": "evaluating", "candidate_percent": 0.0, "rollback": False,
        "shadow_sample_rate": 0.0}  # mirroring is for the shadow phase only
    assert plan["salt"] == live_plan.salt
    expected_baseline = {"provider": "openai", "model": "gpt-4", "base_url": None,
                         "params": {"temperature": 0.2}, "prompt_adapter": None}
    assert plan["baseline"].items() >= expected_baseline.items()
    assert plan["candidate"]["provider"] == "anthropic" and plan["candidate"]["prompt_adapter"] == "claude-v1"
    body = response.content.decode()
    assert "sk-planted" not in body and secret not in body


def test_config__shadow_phase__publishes_the_plans_sample_rate_and_other_phases_zero(live_plan):
    secret = factories.make_sdk_key("prod")
    plan_act(actor="test", plan_key="support-bot", action="advance")
    assert sdk_get(secret).json()["plans"][0]["shadow_sample_rate"] == 0.1
    plan_act(actor="test", plan_key="support-bot", action="advance")
    assert sdk_get(secret).json()["plans"][0]["shadow_sample_rate"] == 0.0


def test_config__draft_plans__not_published(transactional_db):
    factories.make_plan()
    assert sdk_get(factories.make_sdk_key("prod")).json()["plans"] == []


def test_config__staging_key__never_sees_a_prod_plan(live_plan):
    document = sdk_get(factories.make_sdk_key("staging")).json()
    assert document["environment"] == "staging" and document["plans"] == []


def test_config__if_none_match_current_version__304_with_etag(live_plan):
    secret = factories.make_sdk_key("prod")
    etag = sdk_get(secret)["ETag"]
    response = sdk_get(secret, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and response["ETag"] == etag and response.content == b""


def test_config__after_a_change__old_etag_gets_the_new_document(live_plan):
    secret = factories.make_sdk_key("prod")
    etag = sdk_get(secret)["ETag"]
    plan_act(actor="test", plan_key="support-bot", action="advance")
    response = sdk_get(secret, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200 and response.json()["plans"][0]["state"] == "shadowing"


def test_config__cache_hit__runs_zero_sql_queries(live_plan):
    secret = factories.make_sdk_key("prod")
    assert sdk_get(secret).status_code == 200  # warms the key and the document
    with CaptureQueriesContext(connection) as queries:
        response = sdk_get(secret)
        not_modified = sdk_get(secret, HTTP_IF_NONE_MATCH=response["ETag"])
    assert response.status_code == 200 and not_modified.status_code == 304
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_config__after_a_change__first_poll_already_served_from_cache(live_plan):
    """Writers rebuild the document on commit, so no poller pays for the change."""
    secret = factories.make_sdk_key("prod")
    sdk_get(secret)
    plan_act(actor="test", plan_key="support-bot", action="advance")
    with CaptureQueriesContext(connection) as queries:
        response = sdk_get(secret)
    assert response.json()["plans"][0]["state"] == "shadowing"
    assert len(queries) == 0


def test_config__long_poll__wakes_within_100ms_of_a_plan_change(live_plan):
    secret = factories.make_sdk_key("prod")
    etag = sdk_get(secret)["ETag"]
    answered: dict = {}

    def poll():
        response = sdk_get(secret, HTTP_IF_NONE_MATCH=etag, query="?wait=10")
        answered["at"] = time.monotonic()
        answered["response"] = response

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)  # the poller is waiting by now
    assert "at" not in answered
    changed_at = time.monotonic()
    plan_act(actor="test", plan_key="support-bot", action="pause")
    poller.join(timeout=5)
    assert answered["response"].status_code == 200
    assert answered["response"].json()["plans"][0]["state"] == "paused"
    assert answered["at"] - changed_at < 0.1, f"woke {1000 * (answered['at'] - changed_at):.0f} ms after"


def test_config__long_poll_without_change__304_after_the_wait(live_plan):
    secret = factories.make_sdk_key("prod")
    etag = sdk_get(secret)["ETag"]
    started = time.monotonic()
    response = sdk_get(secret, HTTP_IF_NONE_MATCH=etag, query="?wait=0.3")
    assert response.status_code == 304
    assert 0.3 <= time.monotonic() - started < 2


@pytest.mark.parametrize("wait", ["61", "-1", "soon", "nan"])
def test_config__bad_wait__400_naming_wait(live_plan, wait):
    response = sdk_get(factories.make_sdk_key("prod"), query=f"?wait={wait}")
    assert response.status_code == 400 and "wait" in response.json()


def test_config__unknown_key__401(transactional_db):
    assert sdk_get("cut_not-a-real-key").status_code == 401


def test_config__no_credentials__401_or_403(transactional_db):
    assert APIClient().get(CONFIG).status_code in (401, 403)


def test_config__events_only_key__403(transactional_db):
    secret = factories.make_sdk_key("prod", scopes=["events:write"])
    response = sdk_get(secret)
    assert response.status_code == 403 and "config:read" in response.json()["detail"]


def test_config__revoked_key__refused_on_the_very_next_poll(live_plan):
    secret = factories.make_sdk_key("prod")
    assert sdk_get(secret).status_code == 200  # the key is cached now
    sdk_key_revoke(actor="test", key=SDKKey.objects.get())
    response = sdk_get(secret)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_sdk_keys__secret_only_in_the_creation_response(transactional_db):
    from tests.factories import make_staff_user

    client = APIClient()
    client.force_authenticate(make_staff_user(role="cutover-admin"))  # SDK keys are managed by admins
    factories.make_environment("prod")
    created = client.post("/api/v1/sdk-keys/", {"environment": "prod", "scopes": ["config:read"]}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    key = SDKKey.objects.get()
    assert key.hashed_secret != secret and secret not in json.dumps(list(SDKKey.objects.values()), default=str)
    for path in ["/api/v1/sdk-keys/", f"/api/v1/sdk-keys/{key.prefix}/", "/api/v1/audit/"]:
        body = client.get(path).content.decode()
        assert secret not in body and key.hashed_secret not in body and "secret" not in body
    revoked = client.post(f"/api/v1/sdk-keys/{key.prefix}/revoke/", {"reason": "leaked"}, format="json")
    assert revoked.json()["revoked"] is True and secret not in revoked.content.decode()


def test_sdkkey_command__prints_the_secret_alone_on_the_last_line(transactional_db):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("sdkkey", "create", "staging", "--scopes", "config:read", stdout=out, stderr=StringIO())
    secret = out.getvalue().strip().splitlines()[-1]
    assert secret.startswith("cut_") and sdk_get(secret).status_code == 200
    prefix = SDKKey.objects.get().prefix
    call_command("sdkkey", "revoke", prefix, stdout=StringIO())
    assert sdk_get(secret).status_code == 401


def test_no_endpoint__ever_returns_a_provider_key(live_plan, monkeypatch, ops_client):
    planted = "sk-ant-planted-anthropic-secret-0002"
    monkeypatch.setenv("ANTHROPIC_API_KEY", planted)
    os.environ["OPENAI_API_KEY"] = planted
    try:
        secret = factories.make_sdk_key("prod")
        paths = ["/api/v1/endpoints/", "/api/v1/plans/", "/api/v1/plans/support-bot/", "/api/v1/audit/",
                 "/api/v1/environments/", "/api/v1/sdk-keys/", "/api/schema/", "/metrics", "/readyz"]
        bodies = [ops_client.get(path).content.decode() for path in paths] + [sdk_get(secret).content.decode()]
        assert all(planted not in body for body in bodies)
    finally:
        del os.environ["OPENAI_API_KEY"]
