"""The Celery app: Redis as broker when REDIS_URL is set, otherwise a file-system broker that needs no
server (real worker and beat processes either way)."""

import os

from celery import Celery, signals

from . import broker  # noqa: F401 - registers the embedded broker's transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Database connections live across tasks, as they live across requests in the web process: CONN_MAX_AGE and
# CONN_HEALTH_CHECKS decide when one is closed (checked before and after every task, as Django does around
# a request). Celery's Django fix-up would otherwise close every connection before and after each task: a new
# PostgreSQL connection and server backend per shadow comparison, as much worker CPU as the comparison's
# queries. With DB_REUSE_MAX set, the fix-up only recycles a connection every thousand tasks.
app.conf.CELERY_DB_REUSE_MAX = 1000


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_database_connections(task=None, **_: object) -> None:
    if task is not None and getattr(task.request, "is_eager", False):
        return  # eager (tests, CELERY_TASK_ALWAYS_EAGER): the caller's connection and transaction, untouched
    from django.db import close_old_connections

    close_old_connections()


@app.on_after_finalize.connect
def _schedule_periodic_tasks(sender: Celery, **_: object) -> None:
    from django.conf import settings

    sender.add_periodic_task(
        settings.CUTOVER_HEARTBEAT_SECONDS, sender.signature("migrations_app.tasks.scheduler_heartbeat")
    )
    sender.add_periodic_task(3600.0, sender.signature("migrations_app.tasks.events_prune"))
    # A tick that waited longer than its period is stale: the next one is already on its way.
    sender.add_periodic_task(settings.CUTOVER_HEALTH_TICK_SECONDS, sender.signature(
        "migrations_app.tasks.health_tick", options={"expires": settings.CUTOVER_HEALTH_TICK_SECONDS}))
    sender.add_periodic_task(settings.CUTOVER_ROLLOUT_TICK_SECONDS, sender.signature(
        "migrations_app.tasks.rollout_tick", options={"expires": settings.CUTOVER_ROLLOUT_TICK_SECONDS}))
