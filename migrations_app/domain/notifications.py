"""What an alert notification says, per channel kind: pure payload builders (no Django, no I/O).

The service turns an Alert row into an `AlertView` and hands it here; the payloads are plain dicts (JSON
bodies) or an `EmailContent`, so they are easy to test and to document.
"""

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from .rules import RuleAction, Severity

PAGERDUTY_SOURCE = "cutover"
# PagerDuty truncates summaries at 1024 characters; Slack header blocks take 150 plain-text characters.
_PAGERDUTY_SUMMARY_MAX = 1024
_SLACK_HEADER_MAX = 150
_SLACK_SECTION_MAX = 3000

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class NotificationEvent(StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def effective_severity(severity: str, action: str) -> Severity:
    """An alert's severity for routing and paging: a rollback is always critical."""
    if action == RuleAction.ROLLBACK:
        return Severity.CRITICAL
    return Severity(severity)


def severity_at_least(severity: str, minimum: str) -> bool:
    """Whether `severity` reaches `minimum` (info < warning < critical)."""
    return SEVERITY_RANK[Severity(severity)] >= SEVERITY_RANK[Severity(minimum)]


@dataclass(frozen=True)
class AlertView:
    """The facts about one alert that any notification may show."""

    id: int
    name: str
    severity: Severity
    action: str
    state: str
    dedup_key: str
    summary: str
    plan: str
    environment: str
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None = None
    metric: str = ""
    observed: float | None = None
    baseline: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    rule: str | None = None
    # (text, href) pairs: where to look next (the plan's admin page, when a public URL is configured).
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EmailContent:
    subject: str
    body: str


def _number(value: float | None) -> float | None:
    """JSON-safe: NaN and infinities become null."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _format(value: float | None) -> str:
    value = _number(value)
    return "n/a" if value is None else f"{value:.6g}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def headline(alert: AlertView, event: NotificationEvent | str) -> str:
    """`CRITICAL ERROR_RATE_HIGH support-bot`, or `RESOLVED ERROR_RATE_HIGH support-bot`."""
    label = "RESOLVED" if NotificationEvent(event) is NotificationEvent.RESOLVE else alert.severity.upper()
    return f"{label} {alert.name} {alert.plan}"


def details(alert: AlertView) -> dict[str, Any]:
    """The figures behind an alert (PagerDuty's custom_details)."""
    return {
        "observed": _number(alert.observed),
        "baseline": _number(alert.baseline),
        "evidence": alert.evidence,
        "plan": alert.plan,
        "rule": alert.rule,
    }


# --- PagerDuty Events API v2 ----------------------------------------------------------------------------

def pagerduty_payload(alert: AlertView, event: NotificationEvent | str, *, routing_key: str) -> dict[str, Any]:
    """A trigger opens (or updates) the incident keyed by the alert's dedup_key; a resolve closes it."""
    event = NotificationEvent(event)
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": event.value, "dedup_key": alert.dedup_key}
    if event is NotificationEvent.RESOLVE:
        return body
    body["payload"] = {
        "summary": alert.summary[:_PAGERDUTY_SUMMARY_MAX],
        "source": PAGERDUTY_SOURCE,
        "severity": alert.severity.value,
        "timestamp": _iso(alert.first_seen),
        "component": alert.plan,
        "group": alert.environment,
        "class": alert.name,
        "custom_details": details(alert),
    }
    body["links"] = [{"href": href, "text": text} for text, href in alert.links]
    return body


# --- Slack incoming webhook -----------------------------------------------------------------------------

def _slack_escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_ICON = {
    Severity.CRITICAL: ":rotating_light:", Severity.WARNING: ":warning:", Severity.INFO: ":information_source:",
}


def slack_payload(alert: AlertView, event: NotificationEvent | str) -> dict[str, Any]:
    """`text` is the notification fallback; `blocks` the message as shown in the channel."""
    event = NotificationEvent(event)
    resolved = event is NotificationEvent.RESOLVE
    icon = ":white_check_mark:" if resolved else _SLACK_ICON[alert.severity]
    title = f"{icon} [cutover] {headline(alert, event)}"
    summary = _slack_escape(alert.summary)
    fields = [
        f"*Plan*\n{_slack_escape(alert.plan)} ({_slack_escape(alert.environment)})",
        f"*Severity*\n{alert.severity.value}" + (" (rollback)" if alert.action == RuleAction.ROLLBACK else ""),
    ]
    if alert.metric:
        fields.append(f"*{_slack_escape(alert.metric)}*\ncandidate {_format(alert.observed)} · "
                      f"baseline {_format(alert.baseline)}")
    if alert.rule:
        fields.append(f"*Rule*\n{_slack_escape(alert.rule)}")
    when = (f"resolved {_iso(alert.resolved_at)} · first seen {_iso(alert.first_seen)}" if resolved
            else f"first seen {_iso(alert.first_seen)} · last seen {_iso(alert.last_seen)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:_SLACK_HEADER_MAX], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary[:_SLACK_SECTION_MAX]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
    ]
    if alert.links:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": text}, "url": href}
            for text, href in alert.links]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{when} · dedup key `{_slack_escape(alert.dedup_key)}`"}]})
    return {"text": f"{title}: {summary}", "blocks": blocks}


# --- generic webhook ------------------------------------------------------------------------------------

def webhook_payload(alert: AlertView, event: NotificationEvent | str, *, delivery_id: str) -> dict[str, Any]:
    """The signed JSON body. `id` is the same on every retry of one delivery: receivers dedupe by it."""
    event = NotificationEvent(event)
    return {
        "id": delivery_id,
        "type": f"alert.{event.value}",
        "alert": {
            "id": alert.id,
            "name": alert.name,
            "severity": alert.severity.value,
            "action": alert.action,
            "state": alert.state,
            "dedup_key": alert.dedup_key,
            "summary": alert.summary,
            "plan": alert.plan,
            "environment": alert.environment,
            "metric": alert.metric or None,
            "observed": _number(alert.observed),
            "baseline": _number(alert.baseline),
            "evidence": alert.evidence,
            "rule": alert.rule,
            "first_seen": _iso(alert.first_seen),
            "last_seen": _iso(alert.last_seen),
            "resolved_at": _iso(alert.resolved_at),
            "links": [{"href": href, "text": text} for text, href in alert.links],
        },
    }


# --- email ----------------------------------------------------------------------------------------------

def email_content(alert: AlertView, event: NotificationEvent | str) -> EmailContent:
    event = NotificationEvent(event)
    lines = [
        alert.summary,
        "",
        f"Plan:        {alert.plan} ({alert.environment})",
        f"Alert:       {alert.name}",
        f"Severity:    {alert.severity.value}" + (" (rollback)" if alert.action == RuleAction.ROLLBACK else ""),
        f"State:       {'resolved' if event is NotificationEvent.RESOLVE else 'firing'}",
    ]
    if alert.metric:
        lines.append(f"Metric:      {alert.metric}: candidate {_format(alert.observed)}, "
                     f"baseline {_format(alert.baseline)}")
    if alert.rule:
        lines.append(f"Rule:        {alert.rule}")
    lines.append(f"First seen:  {_iso(alert.first_seen)}")
    if event is NotificationEvent.RESOLVE:
        lines.append(f"Resolved at: {_iso(alert.resolved_at)}")
    else:
        lines.append(f"Last seen:   {_iso(alert.last_seen)}")
    lines.append(f"Dedup key:   {alert.dedup_key}")
    lines.extend(f"{text}: {href}" for text, href in alert.links)
    return EmailContent(subject=f"[cutover] {headline(alert, event)}", body="\n".join(lines) + "\n")


# --- channel settings -----------------------------------------------------------------------------------

# The settings each kind takes; the ones marked secret are write-only in the admin and masked everywhere.
CHANNEL_SETTINGS: dict[str, dict[str, bool]] = {
    "slack": {"url": True},
    "pagerduty": {"routing_key": True, "events_url": False},
    "webhook": {"url": False, "signing_secret": True},
    "email": {"to": False},
}
SECRET_SETTINGS = frozenset({"routing_key", "signing_secret"})
MIN_SIGNING_SECRET_LENGTH = 16
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def secret_settings(kind: str) -> list[str]:
    """The names of `kind`'s settings that are credentials (the Slack URL is one: it is the token)."""
    return [name for name, secret in CHANNEL_SETTINGS.get(kind, {}).items() if secret]


def _url_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "is required"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    if parts.username or parts.password:
        return "must not carry credentials before the host"
    return None


def channel_config_problems(kind: str, config: Any) -> dict[str, str]:
    """What is wrong with a channel's settings, by setting name ('' for the whole); empty when valid."""
    if kind not in CHANNEL_SETTINGS:
        return {"": f"unknown channel kind {kind!r}"}
    if not isinstance(config, dict):
        return {"": "must be a JSON object"}
    problems: dict[str, str] = {}
    unknown = sorted(set(config) - set(CHANNEL_SETTINGS[kind]))
    if unknown:
        problems[""] = f"{kind} channels take only {', '.join(CHANNEL_SETTINGS[kind])}; not {', '.join(unknown)}"
    if kind in ("slack", "webhook") and (problem := _url_problem(config.get("url"))):
        problems["url"] = problem
    if kind == "pagerduty":
        key = config.get("routing_key")
        if not isinstance(key, str) or not key.strip():
            problems["routing_key"] = "is required (the integration key of a PagerDuty Events API v2 service)"
        elif any(ch.isspace() for ch in key):
            problems["routing_key"] = "must not contain spaces"
        if config.get("events_url") is not None and (problem := _url_problem(config["events_url"])):
            problems["events_url"] = problem
    if kind == "webhook":
        secret = config.get("signing_secret")
        if not isinstance(secret, str) or len(secret) < MIN_SIGNING_SECRET_LENGTH:
            problems["signing_secret"] = f"is required, at least {MIN_SIGNING_SECRET_LENGTH} characters"
    if kind == "email":
        to = config.get("to")
        if not isinstance(to, list) or not to or not all(isinstance(a, str) for a in to):
            problems["to"] = "must be a non-empty list of email addresses"
        elif bad := [address for address in to if not _EMAIL.match(address)]:
            problems["to"] = f"not email addresses: {', '.join(bad)}"
    return problems


def mask(value: str) -> str:
    """A credential as it may be shown: a URL by its origin, a key by its last four characters."""
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme and parts.hostname:
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"
    return "…" + value[-4:] if len(value) >= 16 else "…"


def masked_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The settings with every credential masked: what the admin and the audit trail show."""
    secret = set(secret_settings(kind)) | SECRET_SETTINGS
    return {name: mask(str(value)) if name in secret else value for name, value in config.items()}


def destination(kind: str, config: dict[str, Any]) -> str:
    """One short line saying where a channel's messages go, with no credential in it."""
    if kind == "slack":
        return mask(str(config.get("url", "")))
    if kind == "pagerduty":
        return f"routing key {mask(str(config.get('routing_key', '')))}"
    if kind == "webhook":
        parts = urlsplit(str(config.get("url", "")))
        return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else ""
    if kind == "email":
        return ", ".join(config.get("to") or [])
    return ""
