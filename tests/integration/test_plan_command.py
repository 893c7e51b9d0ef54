"""`manage.py plan apply | status | rollback`: plans as files, and on-call at a shell."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from migrations_app.models import AuditEvent, MigrationPlan, ModelEndpoint, NotificationChannel

pytestmark = pytest.mark.django_db

PLAN_FILE = """
environment: prod
endpoints:
  - {name: gpt-4-prod, provider: openai, model: gpt-4, api_key_env: OPENAI_API_KEY,
     input_price_per_mtok: 30, output_price_per_mtok: 60}
  - {name: claude-sonnet, provider: anthropic, model: claude-3-5-sonnet, api_key_env: ANTHROPIC_API_KEY,
     input_price_per_mtok: 3, output_price_per_mtok: 15, requests_per_minute: 5000}
plan:
  key: support-bot
  baseline: gpt-4-prod
  candidate: claude-sonnet
  shadow_sample_rate: 0.2
  steps:
    - {percent: 5, min_hold_seconds: 86400, min_samples: 500}
    - {percent: 100, min_hold_seconds: 86400, min_samples: 1000, needs_approval: true}
  rules:
    - {metric: error_rate, comparison: ratio, threshold: 2.0, action: rollback, severity: critical}
channels:
  - {name: oncall-pagerduty, kind: pagerduty, min_severity: critical,
     config: {routing_key: R0UT1NGKEY0000000000000000000000}}
"""


def run(*args: str) -> str:
    out = StringIO()
    call_command("plan", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_FILE)
    return path


def test_apply__new_file__creates_endpoints_plan_and_channel(plan_file):
    output = run("apply", "-f", str(plan_file))
    assert "plan support-bot: created (draft)" in output
    plan = MigrationPlan.objects.get()
    assert [s.percent for s in plan.steps.order_by("order")] == [5, 100]
    assert plan.rules.get().threshold == 2.0 and plan.shadow_sample_rate == 0.2
    assert ModelEndpoint.objects.get(name="claude-sonnet").requests_per_minute == 5000
    assert NotificationChannel.objects.get().plan == plan


def test_apply__same_file_twice__no_changes_the_second_time(plan_file):
    run("apply", "-f", str(plan_file))
    audited = AuditEvent.objects.count()
    assert run("apply", "-f", str(plan_file)).strip().endswith("no changes")
    assert AuditEvent.objects.count() == audited


def test_apply__changed_threshold_on_a_running_plan__updates_the_rule(plan_file):
    run("apply", "-f", str(plan_file))
    from migrations_app.services.plans import plan_act

    plan_act(actor="test", plan_key="support-bot", action="start")
    plan_file.write_text(PLAN_FILE.replace("threshold: 2.0", "threshold: 1.8"))
    assert "plan support-bot: updated" in run("apply", "-f", str(plan_file))
    assert MigrationPlan.objects.get().rules.get().threshold == 1.8


def test_apply__invalid_field__refused_naming_it_and_nothing_stored(plan_file):
    plan_file.write_text(PLAN_FILE.replace("api_key_env: OPENAI_API_KEY", "api_key_env: sk-live-0123456789abcdef"))
    with pytest.raises(CommandError, match=r"endpoints\[0\].*api_key_env"):
        run("apply", "-f", str(plan_file))
    assert not ModelEndpoint.objects.exists() and not MigrationPlan.objects.exists()


def test_status__lists_plans_and_details_one(plan_file):
    run("apply", "-f", str(plan_file))
    assert "support-bot" in run("status") and "draft" in run("status")
    detail = run("status", "support-bot")
    assert "gpt-4-prod → claude-sonnet" in detail and "rollback: error_rate ratio 2" in detail


def test_rollback__running_plan__rolled_back_and_audited_with_the_reason(plan_file):
    from migrations_app.services.plans import plan_act

    run("apply", "-f", str(plan_file))
    for action in ("start", "advance", "advance"):
        plan_act(actor="test", plan_key="support-bot", action=action)
    assert "rolled back" in run("rollback", "support-bot", "--reason", "p95 doubled")
    event = AuditEvent.objects.get(action="plan.rollback")
    assert event.actor.startswith("cli:") and event.reason == "p95 doubled"


def test_rollback__draft_plan__clear_error_not_a_traceback(plan_file):
    run("apply", "-f", str(plan_file))
    with pytest.raises(CommandError, match="cannot rollback a plan that is draft"):
        run("rollback", "support-bot", "--reason", "oops")
