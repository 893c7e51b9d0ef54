"""The ops admin: plans with inline steps and rules, lifecycle buttons, audit trail, endpoints, SDK keys.

Every write the admin makes goes through a service, so each test also checks the audit trail it leaves.
"""

from dataclasses import asdict

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from migrations_app.models import AuditEvent, MigrationPlan, ModelEndpoint, SDKKey
from migrations_app.services.plans import QUALITY_FIELDS, PlanNotEditable, default_rules, default_steps, plan_act
from migrations_app.services.sdk_keys import sdk_key_create
from tests import factories

pytestmark = pytest.mark.django_db

PLAN_ADD_URL = reverse("admin:migrations_app_migrationplan_add")


@pytest.fixture
def admin_user():
    return factories.make_staff_user("alice", superuser=True)


@pytest.fixture
def client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def endpoints() -> tuple[ModelEndpoint, ModelEndpoint]:
    factories.make_environment("prod")
    baseline = factories.make_endpoint("gpt-4-prod", model="gpt-4")
    candidate = factories.make_endpoint("claude-sonnet", provider="anthropic", model="claude-3-5-sonnet",
                                        api_key_env="ANTHROPIC_API_KEY")
    return baseline, candidate


def formset_data(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    """POST data of an inline formset: the management form and one block of fields per row."""
    data = {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": str(initial),
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}
    for index, row in enumerate(rows):
        for name, value in row.items():
            if value is False:  # an unticked checkbox is absent from a browser's POST
                continue
            data[f"{prefix}-{index}-{name}"] = "on" if value is True else "" if value is None else str(value)
    return data


def quality_data(plan: MigrationPlan | None = None) -> dict:
    """The evaluation and shadow fields as the form posts them: the plan's values, or a new plan's defaults."""
    source = plan or MigrationPlan()
    data = {name: getattr(source, name) for name in QUALITY_FIELDS if name != "judge_endpoint"}
    data["judge_endpoint"] = source.judge_endpoint_id or ""
    # An unticked checkbox is absent from a browser's POST.
    return {name: "on" if value is True else value for name, value in data.items() if value is not False}


def plan_add_data(endpoints, *, steps: list[dict] | None = None, rules: list[dict] | None = None,
                  **fields) -> dict:
    """What the add form posts when its prefilled rows are submitted (as edited)."""
    baseline, candidate = endpoints
    environment = factories.make_environment("prod")
    data = {"key": "support-bot", "description": "", "environment": environment.pk, "baseline": baseline.pk,
            "baseline_prompt_adapter": "", "candidate": candidate.pk, "candidate_prompt_adapter": "",
            "shadow_sample_rate": "0.1", "evaluation_duration_seconds": "86400",
            "shadow_duration_seconds": "604800", "final_hold_seconds": "604800",
            "cleanup_after_seconds": "1814400"} | quality_data() | fields
    data |= formset_data("steps", [asdict(s) for s in default_steps()] if steps is None else steps)
    data |= formset_data("rules", [asdict(r) for r in default_rules()] if rules is None else rules)
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def change_url(plan: MigrationPlan) -> str:
    return reverse("admin:migrations_app_migrationplan_change", args=[plan.pk])


def action_url(plan: MigrationPlan, action: str) -> str:
    return reverse("admin:migrations_app_migrationplan_action", args=[plan.pk, action])


# --- plan add form --------------------------------------------------------------------------------------

def test_plan_add_form__new_plan__prefilled_with_playbook_default_steps_and_rules(client, endpoints):
    response = client.get(PLAN_ADD_URL)
    assert response.status_code == 200
    steps = response.context["inline_admin_formsets"][0].formset
    rules = response.context["inline_admin_formsets"][1].formset
    assert [form.initial["percent"] for form in steps.forms] == [5, 25, 50, 100]
    assert [(f.initial["metric"], f.initial["threshold"]) for f in rules.forms] == [
        (r.metric, r.threshold) for r in default_rules()]


def test_plan_add__defaults_submitted_unchanged__plan_created_with_defaults_and_audited(client, endpoints,
                                                                                         admin_user):
    response = client.post(PLAN_ADD_URL, plan_add_data(endpoints))
    assert response.status_code == 302, response.context["errors"] if response.context else response
    plan = MigrationPlan.objects.get(key="support-bot")
    assert plan.state == "draft" and plan.created_by == "user:alice"
    assert [s.percent for s in plan.steps.order_by("order")] == [5, 25, 50, 100]
    assert plan.rules.count() == len(default_rules())
    assert AuditEvent.objects.filter(plan=plan, action="plan.created", actor="user:alice").count() == 1


def test_plan_add__edited_steps_and_a_removed_rule__saved_as_edited(client, endpoints):
    steps = [{"percent": 10, "min_hold_seconds": 60, "min_samples": 5, "needs_approval": True},
             {"percent": 100, "min_hold_seconds": 60, "min_samples": 5, "needs_approval": False}]
    rules = [asdict(r) for r in default_rules()]
    rules[0]["DELETE"] = True
    response = client.post(PLAN_ADD_URL, plan_add_data(endpoints, steps=steps, rules=rules))
    assert response.status_code == 302
    plan = MigrationPlan.objects.get()
    assert [(s.order, s.percent, s.needs_approval) for s in plan.steps.all()] == [(0, 10, True), (1, 100, False)]
    assert plan.rules.count() == len(default_rules()) - 1


def test_plan_add__falling_step_percents__error_on_that_steps_percent_and_nothing_saved(client, endpoints):
    steps = [asdict(s) for s in default_steps()]
    steps[2]["percent"] = 20  # after 25
    response = client.post(PLAN_ADD_URL, plan_add_data(endpoints, steps=steps))
    assert response.status_code == 200
    step_forms = response.context["inline_admin_formsets"][0].formset.forms
    assert step_forms[2].errors["percent"] == ["must be above the previous step's 25"]
    assert not step_forms[1].errors
    assert not MigrationPlan.objects.exists()
    assert not AuditEvent.objects.filter(action="plan.created").exists()


def test_plan_add__step_above_100_percent__error_on_percent(client, endpoints):
    response = client.post(PLAN_ADD_URL, plan_add_data(endpoints, steps=[
        {"percent": 50, "min_hold_seconds": 0, "min_samples": 0}, {"percent": 150, "min_hold_seconds": 0,
                                                                     "min_samples": 0}]))
    assert response.status_code == 200
    assert "percent" in response.context["inline_admin_formsets"][0].formset.forms[1].errors
    assert not MigrationPlan.objects.exists()


def test_plan_add__no_steps__refused_and_nothing_saved(client, endpoints):
    response = client.post(PLAN_ADD_URL, plan_add_data(endpoints, steps=[]))
    assert response.status_code == 200
    assert "at least one rollout step" in str(response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert not MigrationPlan.objects.exists()


def test_plan_add__ratio_threshold_below_1_for_error_rate__error_on_threshold(client, endpoints):
    rules = [{"metric": "error_rate", "comparison": "ratio", "threshold": 0.5, "sustained_seconds": 300,
              "min_samples": 200, "action": "rollback", "severity": "critical", "enabled": True}]
    response = client.post(PLAN_ADD_URL, plan_add_data(endpoints, rules=rules))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][1].formset.forms[0].errors
    assert "ratio below 1" in errors["threshold"][0]
    assert not MigrationPlan.objects.exists()


def test_plan_add__baseline_equals_candidate__error_on_candidate_and_nothing_saved(client, endpoints):
    baseline, _ = endpoints
    response = client.post(PLAN_ADD_URL, plan_add_data(endpoints, candidate=baseline.pk))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["candidate"] == ["must differ from the baseline"]
    assert not MigrationPlan.objects.exists()


# --- plan change form -----------------------------------------------------------------------------------

def _change_data(plan: MigrationPlan, **fields) -> dict:
    """The change form's POST for a draft plan, its rows unchanged."""
    steps = [{"id": s.pk, "plan": plan.pk, "percent": s.percent, "min_hold_seconds": s.min_hold_seconds,
              "min_samples": s.min_samples, "needs_approval": s.needs_approval} for s in plan.steps.all()]
    rules = [{"id": r.pk, "plan": plan.pk, "metric": r.metric, "comparison": r.comparison,
              "threshold": r.threshold, "sustained_seconds": r.sustained_seconds, "min_samples": r.min_samples,
              "action": r.action, "severity": r.severity, "enabled": r.enabled} for r in plan.rules.all()]
    data = {"description": plan.description, "baseline": plan.baseline_id, "candidate": plan.candidate_id,
            "baseline_prompt_adapter": "", "candidate_prompt_adapter": "",
            "shadow_sample_rate": plan.shadow_sample_rate,
            "evaluation_duration_seconds": plan.evaluation_duration_seconds,
            "shadow_duration_seconds": plan.shadow_duration_seconds,
            "final_hold_seconds": plan.final_hold_seconds, "cleanup_after_seconds": plan.cleanup_after_seconds,
            } | quality_data(plan) | fields
    return data | formset_data("steps", steps, initial=len(steps)) | formset_data("rules", rules,
                                                                                   initial=len(rules))


def test_plan_change__draft_step_percent_edited__saved_through_plan_update_and_audited(client, plan):
    data = _change_data(plan, description="edited")
    data["steps-0-percent"] = "1"
    response = client.post(change_url(plan), data)
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.description == "edited"
    assert [s.percent for s in plan.steps.all()] == [1, 25, 50, 100]
    event = AuditEvent.objects.get(plan=plan, action="plan.updated")
    assert event.actor == "user:alice"
    assert event.after["description"] == "edited"


def test_plan_change__plan_left_draft_during_save__error_message_not_500(client, plan, monkeypatch):
    def refuse(**kwargs):
        raise PlanNotEditable("evaluating", ["steps"])

    monkeypatch.setattr("migrations_app.admin.plan_update", refuse)
    data = _change_data(plan)
    data["steps-0-percent"] = "1"
    response = client.post(change_url(plan), data)
    assert response.status_code == 302 and response["Location"] == change_url(plan)
    assert any("Not saved" in m and "evaluating" in m for m in messages_of(response))
    assert plan.steps.first().percent == 5


def test_plan_change__running_plan__steps_endpoints_and_status_read_only(client, plan):
    plan_act(actor="test", plan_key=plan.key, action="start")
    response = client.get(change_url(plan))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert {"baseline", "candidate", "key", "environment", "state", "candidate_percent"}.isdisjoint(form.fields)
    steps_inline, rules_inline = response.context["inline_admin_formsets"]
    assert not steps_inline.has_change_permission and not steps_inline.has_add_permission
    assert rules_inline.has_change_permission


def test_plan_change__rule_edited_while_running__saved_and_rules_replaced(client, plan):
    plan_act(actor="test", plan_key=plan.key, action="start")
    data = _change_data(plan)
    # Read-only rows post only their hidden keys; read-only fields are not posted at all.
    for name in list(data):
        if name.startswith("steps-") and name.split("-")[-1] not in ("id", "plan", "TOTAL_FORMS",
                                                                     "INITIAL_FORMS"):
            del data[name]
    del data["baseline"], data["candidate"]
    data["rules-0-threshold"] = "1.4"
    response = client.post(change_url(plan), data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert plan.rules.order_by("id").first().threshold == 1.4
    assert [s.percent for s in plan.steps.all()] == [5, 25, 50, 100]


def test_plan_change_page__shows_status_and_audit_trail_latest_first(client, plan):
    plan_act(actor="user:bob", plan_key=plan.key, action="start", reason="kick-off reason")
    response = client.get(change_url(plan))
    page = response.content.decode()
    assert "audit-trail" in page and "kick-off reason" in page
    trail = response.context["audit_trail"]
    assert [row["event"].action for row in trail] == ["plan.start", "plan.created"]
    assert trail[0]["changes"] == "state: draft → evaluating"  # only what changed


def test_plan_change_page__completed_plan__view_only_without_buttons(client, plan):
    plan_act(actor="test", plan_key=plan.key, action="abort", reason="gone")
    response = client.get(change_url(plan))
    assert response.status_code == 200
    assert response.context["lifecycle_actions"] == []
    assert client.post(change_url(plan), _change_data(plan)).status_code == 403


def test_plan_changelist__filters_and_search__lists_state_and_candidate_percent(client, plan):
    response = client.get(reverse("admin:migrations_app_migrationplan_changelist"),
                          {"state__exact": "draft", "q": "support"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [plan]


# --- lifecycle buttons ----------------------------------------------------------------------------------

# (actions that bring the plan to where the button applies, the button, the state it leads to)
LIFECYCLE_CASES = [
    ([], "start", "evaluating"),
    (["start"], "advance", "shadowing"),
    (["start"], "pause", "paused"),
    (["start", "pause"], "resume", "evaluating"),
    (["start", "advance"], "promote", "optimizing"),
    (["start", "advance", "advance"], "rollback", "rolled_back"),
    (["start", "advance", "advance", "rollback"], "retry", "rolling_out"),
    (["start"], "abort", "aborted"),
]


@pytest.mark.parametrize(("setup", "action", "expected_state"), LIFECYCLE_CASES,
                         ids=[case[1] for case in LIFECYCLE_CASES])
def test_plan_action_button__confirmed_with_reason__state_changes_and_audited_with_reason(
        client, plan, setup, action, expected_state):
    for earlier in setup:
        plan_act(actor="test", plan_key=plan.key, action=earlier)
    change_page = client.get(change_url(plan))
    assert action_url(plan, action) in change_page.content.decode()

    confirmation = client.get(action_url(plan, action))
    assert confirmation.status_code == 200
    assert 'name="reason"' in confirmation.content.decode()

    response = client.post(action_url(plan, action), {"reason": f"ops decided to {action}"})
    assert response.status_code == 302 and response["Location"] == change_url(plan)
    plan.refresh_from_db()
    assert plan.state == expected_state
    event = AuditEvent.objects.filter(plan=plan).first()
    assert (event.action, event.actor, event.reason) == (f"plan.{action}", "user:alice", f"ops decided to {action}")
    assert any(f"{action} done" in message for message in messages_of(response))


def test_plan_action_button__rollback_with_reason__state_rolled_back_and_audited(client, plan):
    for earlier in ("start", "advance", "advance"):
        plan_act(actor="test", plan_key=plan.key, action=earlier)
    response = client.post(action_url(plan, "rollback"), {"reason": "error rate doubled"})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.state, plan.candidate_percent, plan.rollback) == ("rolled_back", 0, True)
    assert AuditEvent.objects.get(plan=plan, action="plan.rollback").reason == "error rate doubled"


def test_plan_action_button__rollback_without_reason__form_error_and_state_unchanged(client, plan):
    for earlier in ("start", "advance"):
        plan_act(actor="test", plan_key=plan.key, action=earlier)
    response = client.post(action_url(plan, "rollback"), {"reason": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    plan.refresh_from_db()
    assert plan.state == "shadowing"


def test_plan_action_button__start_without_reason__allowed_reason_optional(client, plan):
    response = client.post(action_url(plan, "start"), {})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.state == "evaluating"


def test_plan_change_page__draft__buttons_only_for_allowed_actions(client, plan):
    response = client.get(change_url(plan))
    assert [a["name"] for a in response.context["lifecycle_actions"]] == ["start", "abort"]


def test_plan_action_button__illegal_action_posted__error_message_naming_state_and_no_change(client, plan):
    events_before = AuditEvent.objects.count()
    response = client.post(action_url(plan, "rollback"), {"reason": "try anyway"}, follow=True)
    assert response.status_code == 200
    assert any("Could not rollback" in m and "draft" in m for m in messages_of(response))
    plan.refresh_from_db()
    assert plan.state == "draft"
    assert AuditEvent.objects.count() == events_before


def test_plan_action_button__plan_moved_after_confirmation_page__error_message_with_current_state(client, plan):
    plan_act(actor="test", plan_key=plan.key, action="start")
    assert client.get(action_url(plan, "pause")).status_code == 200
    plan_act(actor="scheduler", plan_key=plan.key, action="abort")  # the race
    response = client.post(action_url(plan, "pause"), {"reason": "hold on"})
    assert response.status_code == 302
    assert any("aborted" in message for message in messages_of(response))
    plan.refresh_from_db()
    assert plan.state == "aborted"


def test_plan_action_button__not_allowed_now__confirmation_page_redirects_with_error(client, plan):
    response = client.get(action_url(plan, "promote"))
    assert response.status_code == 302
    assert any("Cannot promote" in message for message in messages_of(response))


def test_plan_action_button__unknown_action__404(client, plan):
    assert client.get(action_url(plan, "explode")).status_code == 404


def test_plan_action_button__post_without_csrf_token__refused(admin_user, plan):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(action_url(plan, "start"), {"reason": "no token"})
    assert response.status_code == 403
    plan.refresh_from_db()
    assert plan.state == "draft"


def test_plan_action_button__anonymous__redirected_to_login_and_state_unchanged(plan):
    response = Client().post(action_url(plan, "start"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    plan.refresh_from_db()
    assert plan.state == "draft"


# --- audit events ---------------------------------------------------------------------------------------

def test_audit_admin__read_only__no_add_change_or_delete(client, plan):
    event = AuditEvent.objects.filter(plan=plan).first()
    assert client.get(reverse("admin:migrations_app_auditevent_add")).status_code == 403
    assert client.post(reverse("admin:migrations_app_auditevent_change", args=[event.pk]), {}).status_code == 403
    assert client.get(reverse("admin:migrations_app_auditevent_delete", args=[event.pk])).status_code == 403
    listing = client.get(reverse("admin:migrations_app_auditevent_changelist"), {"q": plan.key})
    assert listing.status_code == 200 and event in listing.context["cl"].result_list


# --- endpoints ------------------------------------------------------------------------------------------

ENDPOINT_ADD_URL = reverse("admin:migrations_app_modelendpoint_add")
ENDPOINT_DATA = {"name": "gpt-4o", "provider": "openai", "model": "gpt-4o", "base_url": "",
                 "api_key_env": "OPENAI_API_KEY", "input_price_per_mtok": "2.5", "output_price_per_mtok": "10",
                 "context_window": "128000", "default_params": '{"temperature": 0.2}'}


def test_endpoint_add__valid__created_through_service_and_audited(client):
    response = client.post(ENDPOINT_ADD_URL, ENDPOINT_DATA)
    assert response.status_code == 302
    endpoint = ModelEndpoint.objects.get(name="gpt-4o")
    assert endpoint.default_params == {"temperature": 0.2} and endpoint.base_url is None
    assert AuditEvent.objects.filter(action="endpoint.created", actor="user:alice").count() == 1


def test_endpoint_add__api_key_value_as_env_name__refused_and_value_not_echoed(client):
    secret = "sk-live-abc123def456ghi789jkl"
    response = client.post(ENDPOINT_ADD_URL, ENDPOINT_DATA | {"api_key_env": secret})
    assert response.status_code == 200
    assert "looks like an API key" in response.context["adminform"].form.errors["api_key_env"][0]
    assert secret not in response.content.decode()
    assert not ModelEndpoint.objects.exists()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("default_params", '{"api_key": "x"}', "must not hold credentials"),
    ("default_params", "[1, 2]", "must be a JSON object"),
    ("base_url", "https://user:pw@example.com/v1", "must not carry credentials"),
])
def test_endpoint_add__credentials_in_params_or_url__refused_on_that_field(client, field, value, message):
    response = client.post(ENDPOINT_ADD_URL, ENDPOINT_DATA | {field: value})
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field][0]
    assert not ModelEndpoint.objects.exists()


def test_endpoint_add__openai_compatible_without_base_url__error_on_base_url(client):
    response = client.post(ENDPOINT_ADD_URL, ENDPOINT_DATA | {"provider": "openai_compatible"})
    assert response.status_code == 200
    assert "needs a base URL" in response.context["adminform"].form.errors["base_url"][0]


def test_endpoint_change__used_by_live_plan__updated_through_service_and_plan_audited(client, plan):
    endpoint = plan.candidate
    data = ENDPOINT_DATA | {"name": endpoint.name, "provider": endpoint.provider, "model": "claude-3-7-sonnet",
                            "api_key_env": endpoint.api_key_env}
    response = client.post(reverse("admin:migrations_app_modelendpoint_change", args=[endpoint.pk]), data)
    assert response.status_code == 302
    assert ModelEndpoint.objects.get(pk=endpoint.pk).model == "claude-3-7-sonnet"
    assert AuditEvent.objects.filter(action="plan.endpoint_changed", plan=plan).count() == 1


# --- environments ---------------------------------------------------------------------------------------

def test_environment_add__created_through_service_and_audited(client):
    response = client.post(reverse("admin:migrations_app_environment_add"), {"name": "staging"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="environment.created", after={"name": "staging"}).exists()


# --- SDK keys -------------------------------------------------------------------------------------------

SDK_KEY_ADD_URL = reverse("admin:migrations_app_sdkkey_add")


def test_sdk_key_add__secret_shown_once_then_never_again(client):
    environment = factories.make_environment("prod")
    response = client.post(SDK_KEY_ADD_URL, {"environment": environment.pk, "name": "web",
                                             "scopes": ["config:read"]})
    assert response.status_code == 200
    secret = response.context["secret"]
    key = SDKKey.objects.get()
    assert secret.startswith(key.prefix) and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert key.scopes == ["config:read"] and key.created_by == "user:alice"
    assert AuditEvent.objects.filter(action="sdk_key.created").count() == 1

    for url in (reverse("admin:migrations_app_sdkkey_change", args=[key.pk]),
                reverse("admin:migrations_app_sdkkey_changelist")):
        page = client.get(url)
        assert page.status_code == 200
        body = page.content.decode()
        assert key.prefix in body
        assert secret not in body and key.hashed_secret not in body


def test_sdk_key_add__no_scope_ticked__refused(client):
    environment = factories.make_environment("prod")
    response = client.post(SDK_KEY_ADD_URL, {"environment": environment.pk, "name": "web"})
    assert response.status_code == 200
    assert "scopes" in response.context["adminform"].form.errors
    assert not SDKKey.objects.exists()


def test_sdk_key_change_page__view_only__cannot_change_an_existing_key(client):
    key, _ = sdk_key_create(actor="test", environment=factories.make_environment("prod"))
    url = reverse("admin:migrations_app_sdkkey_change", args=[key.pk])
    assert client.post(url, {"name": "renamed", "hashed_secret": "0" * 64}).status_code == 403
    assert SDKKey.objects.get().hashed_secret == key.hashed_secret


def test_sdk_key_revoke_button__confirmed__key_revoked_and_audited(client):
    key, _ = sdk_key_create(actor="test", environment=factories.make_environment("prod"))
    revoke_url = reverse("admin:migrations_app_sdkkey_revoke", args=[key.pk])
    assert revoke_url in client.get(reverse("admin:migrations_app_sdkkey_change", args=[key.pk])).content.decode()
    assert client.get(revoke_url).status_code == 200
    response = client.post(revoke_url, {"reason": "leaked in a log"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked
    assert AuditEvent.objects.get(action="sdk_key.revoked").reason == "leaked in a log"


def test_sdk_key_revoke_action__selected_keys__revoked(client):
    environment = factories.make_environment("prod")
    keys = [sdk_key_create(actor="test", environment=environment)[0] for _ in range(2)]
    response = client.post(reverse("admin:migrations_app_sdkkey_changelist"),
                           {"action": "revoke_keys", "_selected_action": [k.pk for k in keys]})
    assert response.status_code == 302
    assert all(key.revoked for key in SDKKey.objects.all())
    assert AuditEvent.objects.filter(action="sdk_key.revoked").count() == 2
