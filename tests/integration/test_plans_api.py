"""The ops API: endpoints, plans with nested steps and rules, lifecycle actions, audit."""

import pytest
from rest_framework.test import APIClient

from migrations_app.models import AuditEvent, MigrationPlan
from tests import factories

pytestmark = pytest.mark.django_db

ENDPOINT = {"name": "gpt-4-prod", "provider": "openai", "model": "gpt-4", "base_url": None,
            "api_key_env": "OPENAI_API_KEY", "input_price_per_mtok": 30.0, "output_price_per_mtok": 60.0,
            "context_window": 128000, "default_params": {"temperature": 0.2}}


@pytest.fixture
def endpoints(ops_client):
    ops_client.post("/api/v1/environments/", {"name": "prod"}, format="json")
    ops_client.post("/api/v1/endpoints/", ENDPOINT, format="json")
    ops_client.post("/api/v1/endpoints/", ENDPOINT | {
        "name": "claude-sonnet", "provider": "anthropic", "model": "claude-3-5-sonnet",
        "api_key_env": "ANTHROPIC_API_KEY", "input_price_per_mtok": 3.0, "output_price_per_mtok": 15.0,
    }, format="json")


def plan_body(**overrides) -> dict:
    return {"key": "support-bot", "environment": "prod", "baseline": "gpt-4-prod",
            "candidate": "claude-sonnet", "shadow_sample_rate": 0.1} | overrides


def test_create_endpoint__interfaces_shape__stored_and_echoed(ops_client):
    response = ops_client.post("/api/v1/endpoints/", ENDPOINT, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {k: body[k] for k in ENDPOINT} == ENDPOINT
    assert AuditEvent.objects.filter(action="endpoint.created").count() == 1


def test_create_endpoint__api_key_value_instead_of_env_name__400_naming_the_field_and_nothing_stored(ops_client):
    response = ops_client.post("/api/v1/endpoints/", ENDPOINT | {"api_key_env": "sk-proj-4f9Xq2LmZ81kP0aBcDeF"},
                               format="json")
    assert response.status_code == 400
    assert "looks like an API key" in response.json()["api_key_env"][0]
    assert "sk-proj" not in response.content.decode()
    assert ops_client.get("/api/v1/endpoints/").json()["count"] == 0


def test_create_endpoint__credential_in_default_params__refused(ops_client):
    response = ops_client.post("/api/v1/endpoints/", ENDPOINT | {"default_params": {"api_key": "x"}}, format="json")
    assert response.status_code == 400 and "default_params" in response.json()


def test_create_plan__steps_and_rules_left_out__playbook_defaults(ops_client, endpoints):
    response = ops_client.post("/api/v1/plans/", plan_body(), format="json")
    assert response.status_code == 201, response.json()
    plan = response.json()
    assert plan["state"] == "draft" and plan["candidate_percent"] == 0 and plan["rollback"] is False
    assert [step["percent"] for step in plan["steps"]] == [5, 25, 50, 100]
    rules = {(r["action"], r["metric"], r["comparison"], r["threshold"]) for r in plan["rules"]}
    assert rules == {
        ("alert", "error_rate", "ratio", 1.3), ("alert", "latency_p95", "ratio", 1.5),
        ("alert", "satisfaction", "delta", 0.15), ("rollback", "error_rate", "ratio", 2.0),
        ("rollback", "satisfaction", "ratio", 0.8), ("rollback", "cost_per_request", "ratio", 1.5),
    }
    error_rollback = next(r for r in plan["rules"] if r["action"] == "rollback" and r["metric"] == "error_rate")
    assert error_rollback["sustained_seconds"] == 300
    assert plan["allowed_actions"] == ["start", "abort"]


def test_create_plan__interfaces_example_with_steps_and_rules__stored_as_given(ops_client, endpoints):
    body = plan_body(
        steps=[{"percent": 5, "min_hold_seconds": 604800, "min_samples": 500, "needs_approval": False}],
        rules=[{"metric": "error_rate", "comparison": "ratio", "threshold": 2.0, "sustained_seconds": 300,
                "min_samples": 200, "action": "rollback", "severity": "critical"}],
    )
    plan = ops_client.post("/api/v1/plans/", body, format="json").json()
    assert plan["steps"] == [{"order": 0, "percent": 5.0, "min_hold_seconds": 604800, "min_samples": 500,
                              "needs_approval": False, "monitor": "", "deadline_seconds": None}]
    assert len(plan["rules"]) == 1 and plan["rules"][0]["severity"] == "critical"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"steps": [{"percent": 25}, {"percent": 5}]}, "steps"),
    ({"steps": [{"percent": 150}]}, "steps"),
    ({"rules": [{"metric": "error_rate", "comparison": "ratio", "threshold": -1, "action": "alert"}]}, "rules"),
    ({"rules": [{"metric": "wellbeing", "comparison": "ratio", "threshold": 1, "action": "alert"}]}, "rules"),
    ({"candidate": "gpt-4-prod"}, "candidate"),
    ({"baseline": "no-such-endpoint"}, "baseline"),
    ({"environment": "nowhere"}, "environment"),
    ({"shadow_sample_rate": 1.5}, "shadow_sample_rate"),
    ({"key": "Not A Slug!"}, "key"),
])
def test_create_plan__invalid_field__400_naming_it_and_nothing_stored(ops_client, endpoints, overrides, field):
    response = ops_client.post("/api/v1/plans/", plan_body(**overrides), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not MigrationPlan.objects.exists()


def test_create_plan__falling_step__error_points_at_that_step(ops_client, endpoints):
    response = ops_client.post("/api/v1/plans/", plan_body(steps=[{"percent": 5}, {"percent": 50}, {"percent": 25}]),
                               format="json")
    assert response.json()["steps"] == [{}, {}, {"percent": ["must be above the previous step's 50"]}]


def test_create_plan__duplicate_key__400(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(), format="json")
    response = ops_client.post("/api/v1/plans/", plan_body(), format="json")
    assert response.status_code == 400 and "key" in response.json()


def test_lifecycle__start_advance_rollback_retry__states_percents_and_audit(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(), format="json")
    seen = []
    for action in ["start", "advance", "advance", "advance", "rollback", "retry"]:
        response = ops_client.post(f"/api/v1/plans/support-bot/{action}/", {"reason": f"why {action}"},
                                   format="json")
        assert response.status_code == 200, response.json()
        seen.append((response.json()["state"], response.json()["candidate_percent"], response.json()["rollback"]))
    assert seen == [("evaluating", 0, False), ("shadowing", 0, False), ("rolling_out", 5, False),
                    ("rolling_out", 25, False), ("rolled_back", 0, True), ("rolling_out", 5, False)]
    audit = ops_client.get("/api/v1/audit/?plan=support-bot").json()["results"]
    lifecycle = [e for e in reversed(audit) if e["action"] != "plan.created"]
    assert [e["action"] for e in lifecycle] == ["plan.start", "plan.advance", "plan.advance", "plan.advance",
                                                "plan.rollback", "plan.retry"]
    rollback = lifecycle[4]
    assert rollback["actor"] == "user:ops" and rollback["reason"] == "why rollback"
    assert rollback["before"]["candidate_percent"] == 25 and rollback["after"] == {
        "state": "rolled_back", "candidate_percent": 0.0, "rollback": True, "current_step_index": None,
        "paused_from": None}


def test_lifecycle__illegal_transition__409_with_current_state_and_nothing_changed(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(), format="json")
    response = ops_client.post("/api/v1/plans/support-bot/resume/", {}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "cannot resume a plan that is draft", "state": "draft", "action": "resume"}
    assert MigrationPlan.objects.get().config_version == 1
    assert not AuditEvent.objects.filter(action="plan.resume").exists()


def test_lifecycle__each_applied_action__config_version_rises(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(), format="json")
    versions = [ops_client.post(f"/api/v1/plans/support-bot/{a}/", {}, format="json").json()["config_version"]
                for a in ["start", "pause", "resume", "advance"]]
    assert versions == [2, 3, 4, 5]


def test_lifecycle__unknown_plan__404(ops_client):
    assert ops_client.post("/api/v1/plans/nope/start/", {}, format="json").status_code == 404


def test_update_plan__rules_while_rolling_out__allowed_and_audited(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(), format="json")
    ops_client.post("/api/v1/plans/support-bot/start/", {}, format="json")
    new_rules = [{"metric": "latency_p99", "comparison": "absolute", "threshold": 5000, "action": "alert"}]
    response = ops_client.patch("/api/v1/plans/support-bot/", {"rules": new_rules, "shadow_sample_rate": 0.5},
                                format="json")
    assert response.status_code == 200, response.json()
    assert [r["metric"] for r in response.json()["rules"]] == ["latency_p99"]
    event = AuditEvent.objects.get(action="plan.updated")
    assert event.before["shadow_sample_rate"] == 0.1 and event.after["shadow_sample_rate"] == 0.5


def test_update_plan__steps_after_start__409_naming_the_fields(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(), format="json")
    ops_client.post("/api/v1/plans/support-bot/start/", {}, format="json")
    response = ops_client.patch("/api/v1/plans/support-bot/", {"steps": [{"percent": 10}]}, format="json")
    assert response.status_code == 409 and response.json()["fields"] == ["steps"]


def test_update_endpoint__used_by_a_live_plan__environment_config_version_rises(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(), format="json")
    ops_client.post("/api/v1/plans/support-bot/start/", {}, format="json")
    before = ops_client.get("/api/v1/environments/prod/").json()["config_version"]
    response = ops_client.patch("/api/v1/endpoints/claude-sonnet/", {"model": "claude-3-7-sonnet"}, format="json")
    assert response.status_code == 200
    assert ops_client.get("/api/v1/environments/prod/").json()["config_version"] == before + 1
    assert AuditEvent.objects.filter(action="plan.endpoint_changed", plan_key="support-bot").count() == 1


def test_ops_api__anonymous__refused():
    assert APIClient().get("/api/v1/plans/").status_code in (401, 403)


def test_ops_api__non_staff_user__403():
    from django.contrib.auth import get_user_model

    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("app-dev", password="x"))
    assert client.get("/api/v1/plans/").status_code == 403


def test_ops_api__sdk_key__403_even_with_every_scope():
    secret = factories.make_sdk_key("prod")
    response = APIClient().get("/api/v1/plans/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code in (401, 403)


def test_ops_api__knox_token_from_apitoken_command__authenticates(staff_user):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("apitoken", "create", staff_user.username, stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    response = APIClient().get("/api/v1/plans/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200


def test_schema_and_docs__served_without_internet_assets(ops_client):
    schema = ops_client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/plans/{key}/rollback/" in schema.content
    docs = ops_client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "//unpkg" not in html


def test_advance_out_of_evaluation__plan_requires_a_passing_run_and_has_none__409_naming_why(ops_client, endpoints):
    ops_client.post("/api/v1/plans/", plan_body(requires_evaluation_pass=True, min_accuracy=0.9), format="json")
    ops_client.post("/api/v1/plans/support-bot/start/", {}, format="json")
    response = ops_client.post("/api/v1/plans/support-bot/advance/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["state"] == "evaluating" and "passing evaluation run" in response.json()["detail"]
    assert ops_client.post("/api/v1/plans/support-bot/pause/", {}, format="json").status_code == 200


def test_create_plan__evaluation_and_shadow_settings__stored_and_shown(ops_client, endpoints):
    plan = ops_client.post("/api/v1/plans/", plan_body(requires_evaluation_pass=True, max_p95_ms=1500,
                                                        shadow_min_comparisons=300), format="json").json()
    assert (plan["requires_evaluation_pass"], plan["max_p95_ms"], plan["shadow_min_comparisons"]) == (True, 1500, 300)
    response = ops_client.post("/api/v1/plans/", plan_body(key="other", shadow_comparator="vibes"), format="json")
    assert response.status_code == 400 and "shadow_comparator" in response.json()
