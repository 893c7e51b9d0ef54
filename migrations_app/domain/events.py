"""Validation of the SDK's per-request events and feedback: pure, fast, and naming each bad field.

The ingest endpoint is on the hot path of every application, so this avoids a serializer framework:
one pass over plain dicts, errors in the shape DRF uses (a list with one dict per item).
"""

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ARMS = ("baseline", "candidate")
OUTCOMES = ("ok", "error", "timeout")
MAX_BATCH = 1000
# SDK clocks drift; an event stamped further ahead than this is a bug, not a measurement.
MAX_CLOCK_SKEW = timedelta(minutes=5)
RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class EventIn:
    id: uuid.UUID
    plan: str
    arm: str
    ts: datetime
    latency_ms: float
    ttft_ms: float | None
    outcome: str
    error_type: str | None
    input_tokens: int
    output_tokens: int
    cost: float | None
    retries: int
    fell_back: bool
    format_ok: bool | None
    refusal: bool
    segment: str

    @property
    def rate_limited(self) -> bool:
        return self.outcome == "error" and self.error_type == RATE_LIMITED


@dataclass(frozen=True, slots=True)
class FeedbackIn:
    request_id: uuid.UUID
    score: float | None
    task_completed: bool | None
    ts: datetime
    plan: str | None
    arm: str | None


class BatchInvalid(Exception):
    def __init__(self, errors: dict) -> None:
        self.errors = errors
        super().__init__(errors)


class _Fields:
    """Reads one item's fields, collecting an error per bad field."""

    def __init__(self, item: dict, now: datetime) -> None:
        self.item = item
        self.now = now
        self.errors: dict[str, list[str]] = {}

    def _fail(self, name: str, message: str) -> None:
        self.errors[name] = [message]

    def uuid(self, name: str) -> uuid.UUID | None:
        value = self.item.get(name)
        try:
            return uuid.UUID(str(value)) if value is not None else self._fail(name, "this field is required")
        except ValueError:
            return self._fail(name, "must be a UUID")

    def choice(self, name: str, choices: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self.item.get(name)
        if value is None and not required:
            return None
        if value not in choices:
            return self._fail(name, f"must be one of {', '.join(choices)}")
        return value

    def text(self, name: str, *, max_length: int, required: bool = False) -> str | None:
        value = self.item.get(name)
        if value is None:
            return self._fail(name, "this field is required") if required else None
        if not isinstance(value, str) or not value or len(value) > max_length:
            return self._fail(name, f"must be a non-empty string of at most {max_length} characters")
        return value

    def number(self, name: str, *, required: bool = False, maximum: float | None = None) -> float | None:
        value = self.item.get(name)
        if value is None:
            return self._fail(name, "this field is required") if required else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
            return self._fail(name, "must be a number ≥ 0")
        if maximum is not None and value > maximum:
            return self._fail(name, f"must be at most {maximum:g}")
        return float(value)

    def count(self, name: str) -> int:
        value = self.item.get(name, 0)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            self._fail(name, "must be a whole number ≥ 0")
            return 0
        return value

    def flag(self, name: str, *, default: bool | None) -> bool | None:
        value = self.item.get(name, default)
        if value is not None and not isinstance(value, bool):
            return self._fail(name, "must be true, false or null")
        return value

    def timestamp(self, name: str, *, default_now: bool = False) -> datetime | None:
        value = self.item.get(name)
        if value is None:
            return self.now if default_now else self._fail(name, "this field is required")
        try:
            ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return self._fail(name, "must be an ISO 8601 time, e.g. 2026-11-28T10:00:00Z")
        if ts.tzinfo is None:
            return self._fail(name, "must carry a time zone, e.g. a trailing Z")
        if ts - self.now > MAX_CLOCK_SKEW:
            return self._fail(name, "is more than 5 minutes in the future")
        return ts.astimezone(UTC)


def _items(payload: object, list_name: str) -> list:
    if not isinstance(payload, dict) or not isinstance(payload.get(list_name), list):
        raise BatchInvalid({list_name: [f'expected {{"{list_name}": [...]}}']})
    items = payload[list_name]
    if not items:
        raise BatchInvalid({list_name: ["must not be empty"]})
    if len(items) > MAX_BATCH:
        raise BatchInvalid({list_name: [f"at most {MAX_BATCH} per batch; split it"]})
    return items


UNKNOWN_PLAN = "no plan with this key in this SDK key's environment"


def parse_events(payload: object, *, now: datetime, plans: Collection[str]) -> list[EventIn]:
    """The batch's events, or BatchInvalid naming each bad field of each bad event (all or nothing).
    `plans` are the keys of the plans the caller may report on."""
    items = _items(payload, "events")
    events, errors, seen = [], [], set()
    for item in items:
        if not isinstance(item, dict):
            errors.append({"non_field_errors": ["must be a JSON object"]})
            continue
        fields = _Fields(item, now)
        event_id = fields.uuid("id")
        if event_id is not None and event_id in seen:
            fields._fail("id", "appears twice in this batch")
        seen.add(event_id)
        outcome = fields.choice("outcome", OUTCOMES)
        event = EventIn(
            id=event_id, plan=fields.text("plan", max_length=100, required=True),
            arm=fields.choice("arm", ARMS), ts=fields.timestamp("ts"),
            latency_ms=fields.number("latency_ms", required=True, maximum=3_600_000),
            ttft_ms=fields.number("ttft_ms", maximum=3_600_000), outcome=outcome,
            error_type=fields.text("error_type", max_length=64), input_tokens=fields.count("input_tokens"),
            output_tokens=fields.count("output_tokens"), cost=fields.number("cost", maximum=1000),
            retries=fields.count("retries"), fell_back=bool(fields.flag("fell_back", default=False)),
            format_ok=fields.flag("format_ok", default=None), refusal=bool(fields.flag("refusal", default=False)),
            segment=fields.text("segment", max_length=100) or "",
        )
        if event.plan is not None and event.plan not in plans:
            fields._fail("plan", UNKNOWN_PLAN)
        errors.append(fields.errors)
        events.append(event)
    if any(errors):
        raise BatchInvalid({"events": errors})
    return events


def parse_feedback(payload: object, *, now: datetime, plans: Collection[str]) -> list[FeedbackIn]:
    """One feedback object or `{"feedback": [...]}`: each names a request id, a score in [0, 1] and/or
    whether the task was completed."""
    items = _items(payload if isinstance(payload, dict) and "feedback" in payload else {"feedback": [payload]},
                   "feedback")
    parsed, errors = [], []
    for item in items:
        if not isinstance(item, dict):
            errors.append({"non_field_errors": ["must be a JSON object"]})
            continue
        fields = _Fields(item, now)
        feedback = FeedbackIn(
            request_id=fields.uuid("request_id"), score=fields.number("score", maximum=1),
            task_completed=fields.flag("task_completed", default=None),
            ts=fields.timestamp("ts", default_now=True), plan=fields.text("plan", max_length=100),
            arm=fields.choice("arm", ARMS, required=False),
        )
        if feedback.score is None and feedback.task_completed is None and not fields.errors:
            fields._fail("score", "give a score, task_completed, or both")
        if feedback.plan is not None and feedback.plan not in plans:
            fields._fail("plan", UNKNOWN_PLAN)
        errors.append(fields.errors)
        parsed.append(feedback)
    if any(errors):
        raise BatchInvalid({"feedback": errors})
    return parsed
