"""Staff roles (migrations_app.roles): viewers read, operators act, only admins manage SDK keys, channels and
API tokens; superusers are admins. Each role × each kind of action, in the API and in the admin: refused is
403 and changes nothing. An SDK key never calls the ops API."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from migrations_app.models import AuditEvent, MigrationPlan, ModelEndpoint, NotificationChannel, SDKKey
from migrations_app.roles import ADMIN, OPERATOR, ROLES, VIEWER
from tests import factories

pytestmark = pytest.mark.django_db

NONE, SUPERUSER = "no-role", "superuser"
ALL = (NONE, VIEWER, OPERATOR, ADMIN, SUPERUSER)
READERS = {VIEWER, OPERATOR, ADMIN, SUPERUSER}
OPERATORS = {OPERATOR, ADMIN, SUPERUSER}
ADMINS = {ADMIN, SUPERUSER}

ENDPOINT = {"name": "new-endpoint", "provider": "openai", "model": "gpt-4o", "base_url": None,
            "api_key_env": "OPENAI_API_KEY", "input_price_per_mtok": 5, "output_price_per_mtok": 15,
            "context_window": 128000, "default_params": {}}


def user_for(role: str):
    if role == SUPERUSER:
        return factories.make_staff_user("root", superuser=True)
    return factories.make_staff_user(role, role=None if role == NONE else role)


def api_as(role: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(user_for(role))
    return client


def admin_as(role: str) -> Client:
    client = Client()
    client.force_login(user_for(role))
    return client


def snapshot() -> tuple:
    """Everything a refused request must leave as it was."""
    return (AuditEvent.objects.count(), list(MigrationPlan.objects.values_list("key", "state", "config_version",
                                                                               "shadow_sample_rate")),
            ModelEndpoint.objects.count(), list(SDKKey.objects.values_list("prefix", "revoked_at")),
            NotificationChannel.objects.count())


def test_roles__groups_created_by_the_data_migration_with_their_permissions():
    groups = {group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
              for group in Group.objects.filter(name__in=ROLES)}
    assert set(groups) == set(ROLES)
    viewer, operator, admin = groups[VIEWER], groups[OPERATOR], groups[ADMIN]
    assert "migrations_app.view_migrationplan" in viewer and not any(p.split(".")[1].startswith(
        ("add_", "change_", "delete_", "operate_")) for p in viewer)
    assert not {"migrations_app.view_sdkkey", "migrations_app.view_notificationchannel"} & viewer
    assert viewer < operator < admin
    assert {"migrations_app.operate_migrationplan", "migrations_app.add_migrationplan",
            "migrations_app.change_modelendpoint", "migrations_app.add_evaluationrun"} <= operator
    assert not {"migrations_app.add_sdkkey", "migrations_app.change_notificationchannel",
                "knox.add_authtoken"} & operator
    assert {"migrations_app.add_sdkkey", "migrations_app.change_sdkkey", "migrations_app.add_notificationchannel",
            "knox.view_authtoken", "knox.delete_authtoken"} <= admin


# --- the API -------------------------------------------------------------------------------------------------

READS = ["/api/v1/plans/", "/api/v1/plans/support-bot/", "/api/v1/plans/support-bot/report/",
         "/api/v1/plans/support-bot/postmortem/", "/api/v1/plans/support-bot/comparisons/",
         "/api/v1/plans/support-bot/comparisons/export.jsonl", "/api/v1/plans/support-bot/shadow-summary/",
         "/api/v1/endpoints/", "/api/v1/environments/", "/api/v1/audit/", "/api/v1/alerts/",
         "/api/v1/evaluation-datasets/", "/api/v1/evaluation-runs/"]


@pytest.mark.parametrize("role", ALL)
def test_api_reads__viewer_and_up__200_without_a_role__403(role, plan):
    client = api_as(role)
    for path in READS:
        response = client.get(path)
        assert response.status_code == (200 if role in READERS else 403), (role, path, response.status_code)


def _operator_writes(client: APIClient) -> dict[str, int]:
    """Each kind of operator write; its status."""
    return {
        "endpoint create": client.post("/api/v1/endpoints/", ENDPOINT, format="json").status_code,
        "endpoint edit": client.patch("/api/v1/endpoints/gpt-4-prod/", {"output_price_per_mtok": 61},
                                      format="json").status_code,
        "environment create": client.post("/api/v1/environments/", {"name": "staging"}, format="json").status_code,
        "plan create": client.post("/api/v1/plans/", {"key": "second", "environment": "prod",
                                                      "baseline": "gpt-4-prod", "candidate": "claude-sonnet"},
                                   format="json").status_code,
        "plan edit": client.patch("/api/v1/plans/support-bot/", {"shadow_sample_rate": 0.5},
                                  format="json").status_code,
        "quality settings": client.post("/api/v1/plans/support-bot/quality-settings/",
                                        {"noise_floor_fraction": 0.4}, format="json").status_code,
        "dataset import": client.post("/api/v1/evaluation-datasets/import/", {
            "name": "golden", "format": "jsonl", "content": '{"id": "1", "input": "hi", "expected": "hello"}\n'},
            format="json").status_code,
        "lifecycle start": client.post("/api/v1/plans/support-bot/start/", {"reason": "go"},
                                       format="json").status_code,
        "lifecycle pause": client.post("/api/v1/plans/support-bot/pause/", {}, format="json").status_code,
    }


@pytest.mark.parametrize("role", [NONE, VIEWER])
def test_api_operator_writes__without_operator_role__403_and_nothing_changed(role, plan):
    before = snapshot()
    statuses = _operator_writes(api_as(role))
    assert set(statuses.values()) == {403}, statuses
    assert snapshot() == before


@pytest.mark.parametrize("role", [OPERATOR, ADMIN, SUPERUSER])
def test_api_operator_writes__operator_and_up__done(role, plan):
    statuses = _operator_writes(api_as(role))
    assert all(status in (200, 201) for status in statuses.values()), statuses
    plan.refresh_from_db()
    assert plan.state == "paused" and plan.shadow_sample_rate == 0.5
    assert MigrationPlan.objects.filter(key="second").exists() and ModelEndpoint.objects.filter(
        name="new-endpoint").exists()


def test_api_evaluation_run_create__operator_201_viewer_403(plan):
    admin = api_as(SUPERUSER)
    admin.post("/api/v1/evaluation-datasets/import/", {"name": "golden", "format": "jsonl",
                                                       "content": '{"id": "1", "input": "hi"}\n'}, format="json")
    body = {"dataset": "golden", "plan": "support-bot"}
    before = snapshot()
    assert api_as(VIEWER).post("/api/v1/evaluation-runs/", body, format="json").status_code == 403
    assert snapshot() == before
    assert api_as(OPERATOR).post("/api/v1/evaluation-runs/", body, format="json").status_code == 201


@pytest.mark.parametrize("role", ALL)
def test_api_sdk_keys__admins_only_for_list_create_and_revoke(role, plan):
    existing = factories.make_sdk_key("prod")
    prefix = SDKKey.objects.get().prefix
    client = api_as(role)
    before = snapshot()
    listed = client.get("/api/v1/sdk-keys/").status_code
    created = client.post("/api/v1/sdk-keys/", {"environment": "prod", "scopes": ["config:read"]},
                          format="json").status_code
    revoked = client.post(f"/api/v1/sdk-keys/{prefix}/revoke/", {"reason": "r"}, format="json").status_code
    if role in ADMINS:
        assert (listed, created, revoked) == (200, 201, 200)
        assert SDKKey.objects.count() == 2 and SDKKey.objects.get(prefix=prefix).revoked
    else:
        assert (listed, created, revoked) == (403, 403, 403)
        assert snapshot() == before
    assert existing


def test_api__an_sdk_key_never_calls_the_ops_api_whatever_its_scopes(plan):
    secret = factories.make_sdk_key("prod")
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    before = snapshot()
    for path in [*READS, "/api/v1/sdk-keys/"]:
        response = client.get(path)
        # The ops API does not even read `Bearer`: the request is anonymous (401).
        assert response.status_code in (401, 403), path
    assert client.post("/api/v1/plans/support-bot/start/", {}, format="json").status_code in (401, 403)
    assert client.post("/api/v1/sdk-keys/", {"environment": "prod"}, format="json").status_code in (401, 403)
    assert snapshot() == before


def test_api__an_sdk_principal_as_user__refused_by_the_role_check_itself():
    from types import SimpleNamespace

    from migrations_app.api.permissions import HasStaffRole
    from migrations_app.selectors import SDKPrincipal

    principal = SDKPrincipal(1, "cut_abcdefgh", 1, "prod", ("config:read", "events:write"), False)
    view = SimpleNamespace(action="list", permission_model=MigrationPlan)
    assert not HasStaffRole().has_permission(SimpleNamespace(user=principal, method="GET"), view)


def test_api__refusal_names_the_missing_permission(plan):
    response = api_as(VIEWER).post("/api/v1/plans/support-bot/start/", {}, format="json")
    assert response.status_code == 403 and "migrations_app.operate_migrationplan" in response.json()["detail"]


def test_apitoken_command__stays_staff_only():
    from io import StringIO

    from django.core.management import CommandError, call_command

    user = factories.make_staff_user("contractor")
    user.is_staff = False
    user.save()
    with pytest.raises(CommandError, match="not a staff user"):
        call_command("apitoken", "create", "contractor", stdout=StringIO(), stderr=StringIO())


# --- the admin -----------------------------------------------------------------------------------------------

def _plan_urls(plan) -> dict[str, str]:
    return {"changelist": reverse("admin:migrations_app_migrationplan_changelist"),
            "change": reverse("admin:migrations_app_migrationplan_change", args=[plan.pk]),
            "dashboard": reverse("admin:migrations_app_migrationplan_dashboard", args=[plan.pk]),
            "audit": reverse("admin:migrations_app_auditevent_changelist"),
            "alerts": reverse("admin:migrations_app_alert_changelist"),
            "endpoints": reverse("admin:migrations_app_modelendpoint_changelist"),
            "shadow": reverse("admin:migrations_app_shadow_page", args=[plan.key])}


@pytest.mark.parametrize("role", ALL)
def test_admin_reads__viewer_and_up__200_without_a_role__403(role, plan):
    client = admin_as(role)
    for name, url in _plan_urls(plan).items():
        assert client.get(url).status_code == (200 if role in READERS else 403), (role, name)


@pytest.mark.parametrize("role", ALL)
def test_admin_lifecycle__operate_permission_needed_for_buttons_and_action_views(role, plan):
    client = admin_as(role)
    action = reverse("admin:migrations_app_migrationplan_action", args=[plan.pk, "start"])
    page = client.get(reverse("admin:migrations_app_migrationplan_change", args=[plan.pk]))
    before = snapshot()
    confirmation = client.get(action)
    response = client.post(action, {"reason": "go"})
    plan.refresh_from_db()
    if role in OPERATORS:
        assert action.encode() in page.content
        assert confirmation.status_code == 200 and response.status_code == 302 and plan.state != "draft"
    else:
        assert action.encode() not in page.content
        assert (confirmation.status_code, response.status_code) == (403, 403)
        assert snapshot() == before and plan.state == "draft"


@pytest.mark.parametrize("role", ALL)
def test_admin_plan_and_endpoint_editing__operator_and_up(role, plan):
    client = admin_as(role)
    add_plan = client.get(reverse("admin:migrations_app_migrationplan_add")).status_code
    add_endpoint = client.get(reverse("admin:migrations_app_modelendpoint_add")).status_code
    before = snapshot()
    posted = client.post(reverse("admin:migrations_app_modelendpoint_add"), {
        **{k: ("" if v is None else v) for k, v in ENDPOINT.items()}, "default_params": "{}"})
    if role in OPERATORS:
        assert (add_plan, add_endpoint, posted.status_code) == (200, 200, 302)
        assert ModelEndpoint.objects.filter(name="new-endpoint").exists()
    else:
        assert (add_plan, add_endpoint, posted.status_code) == (403, 403, 403)
        assert snapshot() == before


@pytest.mark.parametrize("role", ALL)
def test_admin_sdk_keys_channels_and_api_tokens__admins_only(role, plan):
    client = admin_as(role)
    factories.make_sdk_key("prod")
    key = SDKKey.objects.get()
    pages = {
        "keys": reverse("admin:migrations_app_sdkkey_changelist"),
        "key": reverse("admin:migrations_app_sdkkey_change", args=[key.pk]),
        "key add": reverse("admin:migrations_app_sdkkey_add"),
        "channels": reverse("admin:migrations_app_notificationchannel_changelist"),
        "channel add": reverse("admin:migrations_app_notificationchannel_add"),
        "tokens": reverse("admin:knox_authtoken_changelist"),
    }
    before = snapshot()
    statuses = {name: client.get(url).status_code for name, url in pages.items()}
    revoke = client.post(reverse("admin:migrations_app_sdkkey_revoke", args=[key.pk]), {"reason": "r"})
    created = client.post(pages["key add"], {"environment": key.environment_id, "name": "n",
                                             "scopes": ["config:read"]})
    channel = client.post(pages["channel add"], {"name": "mail", "kind": "email", "environment": key.environment_id,
                                                 "min_severity": "info", "enabled": "on", "to": "oncall@example.com"})
    if role in ADMINS:
        assert set(statuses.values()) == {200}, statuses
        assert revoke.status_code == 302 and created.status_code == 200 and channel.status_code == 302
        assert SDKKey.objects.get(pk=key.pk).revoked and SDKKey.objects.count() == 2
        assert NotificationChannel.objects.filter(name="mail").exists()
    else:
        assert set(statuses.values()) == {403}, statuses
        assert (revoke.status_code, created.status_code, channel.status_code) == (403, 403, 403)
        assert snapshot() == before
