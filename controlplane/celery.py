"""The Celery app: Redis as broker when REDIS_URL is set, otherwise a file-system broker that needs no
server (real worker and beat processes either way)."""

import os

from celery import Celery

from . import broker  # noqa: F401 - registers the embedded broker's transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
