"""Celery tasks: thin wrappers that take ids and call a service."""

import time

from celery import shared_task
from django.core.cache import cache

HEARTBEAT_CACHE_KEY = "cutover:scheduler:heartbeat"


@shared_task(name="migrations_app.tasks.scheduler_heartbeat", ignore_result=True)
def scheduler_heartbeat() -> float:
    """Beat schedules this; the worker records when it ran, so /readyz and operators can see that both
    the scheduler and a worker are alive."""
    now = time.time()
    cache.set(HEARTBEAT_CACHE_KEY, now, timeout=None)
    return now
