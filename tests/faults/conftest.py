"""Fault tests: real processes (granian, celery, redis-server, the sidecar) on loopback, with faults injected
into private instances only — never the machine's shared PostgreSQL or Redis."""

import pytest
from django.conf import settings

from migrations_app.models import MigrationPlan
from migrations_app.services.plans import RuleSpec, StepSpec, plan_act
from tests import factories

on_postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
requires_postgres = pytest.mark.skipif(not on_postgres, reason="needs PostgreSQL (DATABASE_URL)")

QUIET_RULES = [RuleSpec(metric="error_rate", comparison="absolute", threshold=0.5, action="rollback",
                        severity="critical", sustained_seconds=0, min_samples=1000)]


def rolling_plan(key: str = "faults", *, percent: float = 50.0, **fields) -> MigrationPlan:
    """A published plan at its first rollout step."""
    plan = factories.make_plan(key, steps=fields.pop("steps", [StepSpec(percent=percent)]),
                               rules=fields.pop("rules", QUIET_RULES), **fields)
    for action in ("start", "advance", "advance"):
        plan_act(actor="test", plan_key=plan.key, action=action)
    plan.refresh_from_db()
    return plan
