"""Liveness, readiness and Prometheus metrics."""

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


def readyz(request):
    problems = {name: problem for name, check in (("database", _check_database), ("broker", _check_broker))
                if (problem := check()) is not None}
    body = {"status": "ready" if not problems else "not ready",
            "checks": {name: problems.get(name, "ok") for name in ("database", "broker")}}
    return JsonResponse(body, status=503 if problems else 200)


class PlanStateCollector:
    """Plans per state and each live plan's candidate percent, read at scrape time."""

    def collect(self):
        from migrations_app.domain.lifecycle import TERMINAL_STATES, State
        from migrations_app.models import MigrationPlan

        by_state = GaugeMetricFamily("cutover_plans", "Migration plans by state", labels=["state"])
        percent = GaugeMetricFamily("cutover_plan_candidate_percent", "Candidate traffic percent",
                                    labels=["plan", "environment", "state"])
        rollback = GaugeMetricFamily("cutover_plan_rollback", "1 when the plan's rollback flag is set",
                                     labels=["plan", "environment"])
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


_collector_registered = False


def metrics(request):
    global _collector_registered
    if not _collector_registered:
        REGISTRY.register(PlanStateCollector())
        _collector_registered = True
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
