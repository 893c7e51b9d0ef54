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


@shared_task(name="migrations_app.tasks.events_prune", ignore_result=True)
def events_prune() -> int:
    from .services.ingest import events_prune as prune

    return prune()


@shared_task(name="migrations_app.tasks.health_tick", ignore_result=True)
def health_tick() -> int:
    from .services.health import health_tick as tick

    return tick()


@shared_task(name="migrations_app.tasks.notification_send", bind=True, max_retries=6, acks_late=True,
             ignore_result=True)
def notification_send(self, notification_id: int) -> None:
    """Send one alert notification. A channel's per-second slot being taken defers it (not an attempt);
    a failed attempt retries with exponential backoff and full jitter, or after the receiver's
    Retry-After. The notification row counts attempts and says when it has failed for good."""
    import random

    from .services.notifications import DeliveryFailed, NotificationDeferred
    from .services.notifications import notification_send as send

    try:
        send(notification_id=notification_id, max_attempts=self.max_retries + 1)
    except NotificationDeferred as deferred:
        # Deferrals don't use up the retry budget: the row's attempts decide when to give up.
        raise self.retry(countdown=deferred.countdown + random.uniform(0, 0.5),
                         max_retries=self.request.retries + 1) from None
    except DeliveryFailed as failed:
        if failed.final:
            return
        countdown = (failed.retry_after if failed.retry_after is not None
                     else random.uniform(0, min(60, 2 ** failed.attempts)))
        raise self.retry(countdown=countdown, max_retries=self.request.retries + 1) from None


@shared_task(name="migrations_app.tasks.rollout_tick", ignore_result=True)
def rollout_tick() -> int:
    from .services.rollout import rollout_tick as tick

    return len(tick())


@shared_task(name="migrations_app.tasks.shadow_compare", bind=True, max_retries=8, acks_late=True,
             ignore_result=True)
def shadow_compare(self, sample_id: int) -> None:
    """Ask the candidate (and maybe the baseline again) for one shadow sample and store the comparison once.
    A provider that is rate-limited or failing, or a database that is briefly unreachable, retries later;
    a sample whose task is lost anyway is picked up again by shadow_samples_sweep."""
    import random

    from django.db import InterfaceError, OperationalError

    from .services.shadow import ShadowRetry
    from .services.shadow import shadow_compare as compare

    try:
        compare(sample_id=sample_id)
    except ShadowRetry as retry:
        raise self.retry(countdown=retry.countdown + random.uniform(0, 1)) from None
    except (OperationalError, InterfaceError) as error:
        from .services.shadow import shadow_release

        shadow_release(sample_id=sample_id, error=repr(error))
        raise self.retry(countdown=random.uniform(1, 2 ** min(self.request.retries + 1, 6))) from error


@shared_task(name="migrations_app.tasks.shadow_samples_sweep", ignore_result=True)
def shadow_samples_sweep() -> int:
    from .services.shadow import shadow_samples_sweep as sweep

    return sweep()


@shared_task(name="migrations_app.tasks.evaluation_run_execute", acks_late=True, ignore_result=True)
def evaluation_run_execute(run_id: int) -> None:
    from .services.evaluation import evaluation_run_execute as execute

    execute(run_id=run_id)


@shared_task(name="migrations_app.tasks.evaluation_schedules_tick", ignore_result=True)
def evaluation_schedules_tick() -> int:
    from .services.evaluation import evaluation_schedules_tick as tick

    return len(tick())
