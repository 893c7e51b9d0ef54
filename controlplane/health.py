"""Liveness, readiness and Prometheus metrics."""

import time

from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any failure means not ready; say which
        return f"{type(error).__name__}: {error}"
    return None


def _check_broker() -> str | None:
    from controlplane.celery import app

    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _scheduler_heartbeat_age() -> float | None:
    from migrations_app.tasks import HEARTBEAT_CACHE_KEY

    last = cache.get(HEARTBEAT_CACHE_KEY)
    return None if last is None else round(time.time() - last, 1)


def readyz(request):
    """Ready when the database and the broker answer. The scheduler's heartbeat age is reported, not
    required: the web server can serve SDKs while beat or the worker restarts."""
    problems = {name: problem for name, check in (("database", _check_database), ("broker", _check_broker))
                if (problem := check()) is not None}
    body = {"status": "ready" if not problems else "not ready",
            "checks": {name: problems.get(name, "ok") for name in ("database", "broker")},
            "scheduler_heartbeat_age_seconds": _scheduler_heartbeat_age()}
    return JsonResponse(body, status=503 if problems else 200)


class PlanStateCollector:
    """Plans per state and each live plan's candidate percent, read at scrape time."""

    @staticmethod
    def _families():
        return (
            GaugeMetricFamily("cutover_plans", "Migration plans by state", labels=["state"]),
            GaugeMetricFamily("cutover_plan_candidate_percent", "Candidate traffic percent",
                              labels=["plan", "environment", "state"]),
            GaugeMetricFamily("cutover_plan_rollback", "1 when the plan's rollback flag is set",
                              labels=["plan", "environment"]),
        )

    def describe(self):
        # Without this, registering the collector would call collect() — a query at import time.
        return self._families()

    def collect(self):
        from migrations_app.domain.lifecycle import TERMINAL_STATES, State
        from migrations_app.models import MigrationPlan

        by_state, percent, rollback = self._families()
        counts = dict.fromkeys((s.value for s in State), 0)
        plans = MigrationPlan.objects.select_related("environment").only(
            "key", "state", "candidate_percent", "rollback", "environment__name")
        for plan in plans:
            counts[plan.state] += 1
            if plan.state not in TERMINAL_STATES:
                percent.add_metric([plan.key, plan.environment.name, plan.state], plan.candidate_percent)
                rollback.add_metric([plan.key, plan.environment.name], float(plan.rollback))
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield from (by_state, percent, rollback)


REGISTRY.register(PlanStateCollector())


def metrics(request):
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
