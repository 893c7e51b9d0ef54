"""Notification payloads per channel kind, severity routing and channel settings (pure: no Django)."""

import json
import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from migrations_app.domain.notifications import (
    AlertView,
    NotificationEvent,
    channel_config_problems,
    destination,
    effective_severity,
    email_content,
    mask,
    masked_config,
    pagerduty_payload,
    severity_at_least,
    slack_payload,
    webhook_payload,
)
from migrations_app.domain.rules import Severity

FIRST = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ROUTING_KEY = "R0123456789abcdef0123456789abcd"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


def alert(**overrides) -> AlertView:
    fields = dict(
        id=7, name="ERROR_RATE_HIGH", severity=Severity.CRITICAL, action="alert", state="firing",
        dedup_key="cutover/support-bot/ERROR_RATE_HIGH/abc123", summary="support-bot: error rate 4.1 % vs 1.0 %",
        plan="support-bot", environment="prod", first_seen=FIRST, last_seen=FIRST, metric="error_rate",
        observed=0.041, baseline=0.01, evidence={"samples": [5000, 5100], "p_value": 0.001},
        rule="alert: error_rate ratio 1.5", links=(("support-bot in Cutover", "https://cutover.example/p/1"),),
    )
    return AlertView(**(fields | overrides))


# --- severity -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("severity", "minimum", "reaches"), [
    ("info", "info", True), ("info", "warning", False), ("warning", "warning", True),
    ("warning", "critical", False), ("critical", "info", True), ("critical", "critical", True),
])
def test_severity_at_least__info_below_warning_below_critical(severity, minimum, reaches):
    assert severity_at_least(severity, minimum) is reaches


def test_effective_severity__a_rollback_is_always_critical():
    assert effective_severity("warning", "rollback") is Severity.CRITICAL
    assert effective_severity("warning", "alert") is Severity.WARNING


# --- PagerDuty ------------------------------------------------------------------------------------------

def test_pagerduty_trigger__events_api_v2_shape_with_plan_environment_and_figures():
    body = pagerduty_payload(alert(), NotificationEvent.TRIGGER, routing_key=ROUTING_KEY)

    assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
    assert body["dedup_key"] == "cutover/support-bot/ERROR_RATE_HIGH/abc123"
    payload = body["payload"]
    assert payload["summary"] == "support-bot: error rate 4.1 % vs 1.0 %"
    assert (payload["source"], payload["severity"], payload["component"], payload["group"]) == (
        "cutover", "critical", "support-bot", "prod")
    assert payload["custom_details"] == {
        "observed": 0.041, "baseline": 0.01, "evidence": {"samples": [5000, 5100], "p_value": 0.001},
        "plan": "support-bot", "rule": "alert: error_rate ratio 1.5"}
    assert body["links"] == [{"href": "https://cutover.example/p/1", "text": "support-bot in Cutover"}]


def test_pagerduty_resolve__only_routing_key_action_and_the_same_dedup_key():
    trigger = pagerduty_payload(alert(), "trigger", routing_key=ROUTING_KEY)
    resolve = pagerduty_payload(alert(state="resolved"), "resolve", routing_key=ROUTING_KEY)

    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}


def test_pagerduty_trigger__long_summary__cut_to_pagerdutys_1024_characters():
    body = pagerduty_payload(alert(summary="x" * 5000), "trigger", routing_key=ROUTING_KEY)
    assert len(body["payload"]["summary"]) == 1024


@pytest.mark.parametrize("severity", ["info", "warning", "critical"])
def test_pagerduty_trigger__severity_is_one_pagerduty_knows(severity):
    body = pagerduty_payload(alert(severity=Severity(severity)), "trigger", routing_key=ROUTING_KEY)
    assert body["payload"]["severity"] == severity


# --- Slack ----------------------------------------------------------------------------------------------

def test_slack_trigger__fallback_text_and_blocks_name_severity_alert_and_plan():
    body = slack_payload(alert(), "trigger")

    assert "CRITICAL ERROR_RATE_HIGH support-bot" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    assert "CRITICAL ERROR_RATE_HIGH support-bot" in body["blocks"][0]["text"]["text"]
    rendered = json.dumps(body["blocks"])
    assert "error rate 4.1 % vs 1.0 %" in rendered and "prod" in rendered and "0.041" in rendered
    assert "https://cutover.example/p/1" in rendered


def test_slack_resolve__says_resolved():
    body = slack_payload(alert(state="resolved", resolved_at=FIRST), "resolve")
    assert "RESOLVED ERROR_RATE_HIGH support-bot" in body["text"]
    assert ":white_check_mark:" in body["text"]


def test_slack__markup_characters_in_the_summary__escaped():
    body = slack_payload(alert(summary="<!channel> latency > 2× & rising"), "trigger")
    assert "&lt;!channel&gt; latency &gt; 2× &amp; rising" in body["text"]
    assert "<!channel>" not in json.dumps(body)


def test_slack__header_longer_than_slack_allows__cut_to_150_characters():
    body = slack_payload(alert(plan="p" * 300), "trigger")
    assert len(body["blocks"][0]["text"]["text"]) == 150


# --- generic webhook ------------------------------------------------------------------------------------

def test_webhook__typed_event_with_the_whole_alert_and_a_delivery_id():
    body = webhook_payload(alert(), "trigger", delivery_id="ntf_12")

    assert body["type"] == "alert.trigger" and body["id"] == "ntf_12"
    assert body["alert"]["dedup_key"] == "cutover/support-bot/ERROR_RATE_HIGH/abc123"
    assert body["alert"]["first_seen"] == "2025-06-01T12:00:00+00:00" and body["alert"]["resolved_at"] is None
    assert webhook_payload(alert(), "resolve", delivery_id="ntf_13")["type"] == "alert.resolve"


def test_webhook__not_a_number__sent_as_null_so_the_body_is_strict_json():
    body = webhook_payload(alert(observed=math.nan, baseline=math.inf), "trigger", delivery_id="ntf_1")
    text = json.dumps(body, allow_nan=False)
    assert json.loads(text)["alert"]["observed"] is None


# --- email ----------------------------------------------------------------------------------------------

def test_email__subject_names_severity_alert_and_plan():
    assert email_content(alert(), "trigger").subject == "[cutover] CRITICAL ERROR_RATE_HIGH support-bot"
    assert email_content(alert(severity=Severity.WARNING), "trigger").subject == (
        "[cutover] WARNING ERROR_RATE_HIGH support-bot")
    assert email_content(alert(), "resolve").subject == "[cutover] RESOLVED ERROR_RATE_HIGH support-bot"


def test_email__body_holds_summary_figures_and_dedup_key():
    body = email_content(alert(), "trigger").body
    assert body.startswith("support-bot: error rate 4.1 % vs 1.0 %\n")
    assert "candidate 0.041, baseline 0.01" in body and "cutover/support-bot/ERROR_RATE_HIGH/abc123" in body


def test_rollback_alert__marked_as_a_rollback_everywhere():
    rolled_back = alert(name="PLAN_ROLLED_BACK", action="rollback", metric="", observed=None, baseline=None,
                        rule=None)
    assert "(rollback)" in email_content(rolled_back, "trigger").body
    assert "(rollback)" in json.dumps(slack_payload(rolled_back, "trigger"))


def test_unknown_event__refused():
    with pytest.raises(ValueError):
        slack_payload(alert(), "acknowledge")


# --- channel settings -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "config"), [
    ("slack", {"url": SLACK_URL}),
    ("pagerduty", {"routing_key": ROUTING_KEY}),
    ("pagerduty", {"routing_key": ROUTING_KEY, "events_url": "http://127.0.0.1:9/v2/enqueue"}),
    ("webhook", {"url": "https://hooks.example.com/cutover", "signing_secret": "s" * 32}),
    ("email", {"to": ["oncall@example.com", "ops@example.com"]}),
])
def test_channel_config__valid_settings_per_kind__no_problems(kind, config):
    assert channel_config_problems(kind, config) == {}


@pytest.mark.parametrize(("kind", "config", "field"), [
    ("slack", {}, "url"),
    ("slack", {"url": "hooks.slack.com/services/x"}, "url"),
    ("slack", {"url": "https://user:pw@hooks.slack.com/x"}, "url"),
    ("pagerduty", {}, "routing_key"),
    ("pagerduty", {"routing_key": "has spaces in it"}, "routing_key"),
    ("pagerduty", {"routing_key": ROUTING_KEY, "events_url": "ftp://x"}, "events_url"),
    ("webhook", {"url": "https://hooks.example.com"}, "signing_secret"),
    ("webhook", {"url": "https://hooks.example.com", "signing_secret": "short"}, "signing_secret"),
    ("email", {"to": []}, "to"),
    ("email", {"to": "oncall@example.com"}, "to"),
    ("email", {"to": ["not-an-address"]}, "to"),
    ("slack", {"url": SLACK_URL, "routing_key": ROUTING_KEY}, ""),
    ("carrier-pigeon", {}, ""),
])
def test_channel_config__missing_or_wrong_setting__problem_on_that_setting(kind, config, field):
    assert field in channel_config_problems(kind, config)


def test_mask__urls_by_origin_and_keys_by_last_four():
    assert mask(SLACK_URL) == "https://hooks.slack.com/…"
    assert mask(ROUTING_KEY) == "…abcd"
    assert mask("short") == "…"


def test_masked_config_and_destination__never_show_a_credential():
    configs = {
        "slack": {"url": SLACK_URL},
        "pagerduty": {"routing_key": ROUTING_KEY},
        "webhook": {"url": "https://hooks.example.com/cutover", "signing_secret": "s3cr3t-s3cr3t-s3cr3t"},
    }
    for kind, config in configs.items():
        shown = json.dumps(masked_config(kind, config)) + destination(kind, config)
        assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in shown and ROUTING_KEY not in shown
        assert "s3cr3t-s3cr3t-s3cr3t" not in shown
    assert destination("webhook", configs["webhook"]) == "https://hooks.example.com/cutover"
    assert destination("email", {"to": ["a@example.com", "b@example.com"]}) == "a@example.com, b@example.com"


def test_alert_view__is_immutable():
    with pytest.raises(AttributeError):
        alert().name = "OTHER"  # type: ignore[misc]
    assert replace(alert(), name="OTHER").name == "OTHER"
