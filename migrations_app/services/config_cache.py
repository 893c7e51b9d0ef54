"""The SDK config document, built once per version and served from the cache.

Writers call `config_publish` on commit: it rebuilds the environment's document under the environment's
row lock, stores it, and wakes long-polls — over Redis pub/sub when Redis is configured, otherwise pollers
watch the shared cache. A reader that misses the cache rebuilds the same way. Since every store happens
while holding the lock that writers hold until they commit, documents land in the cache in version order
and a slow reader can never put back an older one (on SQLite, whose transactions begin IMMEDIATE, the
database lock plays that part).

The cache and Redis only save work: when they are down the document is built from the database on every
read, long-polls watch the database instead of the pub/sub channel, and a write still commits.
"""

import json
import logging
import time
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F

from .. import selectors
from ..models import Environment, MigrationPlan
from ..selectors import cache_get_or_none, cache_set_quietly

logger = logging.getLogger("migrations_app.config_cache")

_POLL_INTERVAL_SECONDS = 0.02
# How often a long-poll reads the database while Redis (its pub/sub and the cache) is unavailable.
_DATABASE_POLL_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class CachedDocument:
    version: int
    body: bytes

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def config_cache_key(environment_id: int) -> str:
    return f"cutover:sdkconfig:{environment_id}"


def _channel(environment_id: int) -> str:
    return f"cutover:sdkconfig-changed:{environment_id}"


def _render(document: dict) -> CachedDocument:
    return CachedDocument(document["version"], json.dumps(document, separators=(",", ":")).encode())


def config_document_get(environment_id: int) -> CachedDocument:
    """The current document: from the cache (no SQL), or built and cached on a miss."""
    return config_document_cached(environment_id) or _rebuild(environment_id)


def config_document_cached(environment_id: int) -> CachedDocument | None:
    """The current document if the cache holds it (None on a miss or a cache that is down): never SQL."""
    cached = cache_get_or_none(config_cache_key(environment_id))
    return None if cached is None else CachedDocument(*cached)


def plan_config_bump(plan: MigrationPlan) -> None:
    """Raise the plan's and its environment's config versions and publish the new document on commit.
    Call inside the transaction that changes the plan, with the plan row locked; the caller saves."""
    plan.config_version += 1
    Environment.objects.filter(pk=plan.environment_id).update(config_version=F("config_version") + 1)
    # robust: the change is committed; a cache or pub/sub outage must not turn it into an error.
    transaction.on_commit(partial(config_publish, plan.environment_id), robust=True)


def config_publish(environment_id: int) -> None:
    """Rebuild, store and announce the environment's document. Call it after the change committed."""
    document = _rebuild(environment_id)
    if settings.REDIS_URL:
        try:
            _redis().publish(_channel(environment_id), str(document.version))
        except Exception as error:  # the change is committed; pollers find it on their next read
            logger.warning("config change of environment %s not announced: %s: %s", environment_id,
                           type(error).__name__, error)


def _rebuild(environment_id: int) -> CachedDocument:
    with transaction.atomic():
        Environment.objects.select_for_update().filter(pk=environment_id).first()
        document = _render(selectors.sdk_config_document(environment_id=environment_id))
        cache_set_quietly(config_cache_key(environment_id), (document.version, document.body),
                          settings.CUTOVER_CONFIG_CACHE_SECONDS)
    return document


def config_wait_for_change(environment_id: int, *, known_version: int, timeout: float) -> CachedDocument:
    """Block until the document's version differs from `known_version`, or `timeout` seconds pass;
    return the document then current."""
    deadline = time.monotonic() + timeout
    interval = _POLL_INTERVAL_SECONDS
    if settings.REDIS_URL:
        try:
            return _wait_on_channel(environment_id, known_version=known_version, deadline=deadline)
        except Exception as error:  # Redis is down: watch the database, less often
            logger.warning("config long-poll falls back to the database: %s: %s", type(error).__name__, error)
            interval = _DATABASE_POLL_INTERVAL_SECONDS
    document = config_document_get(environment_id)
    while document.version == known_version and time.monotonic() < deadline:
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
        document = config_document_get(environment_id)
    return document


def _wait_on_channel(environment_id: int, *, known_version: int, deadline: float) -> CachedDocument:
    pubsub = _redis().pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(_channel(environment_id))
        # Subscribed first, then checked: a change between the two is not missed.
        document = config_document_get(environment_id)
        while document.version == known_version and (remaining := deadline - time.monotonic()) > 0:
            if pubsub.get_message(timeout=remaining) is not None:
                document = config_document_get(environment_id)
        return document
    finally:
        pubsub.close()


_redis_client = None


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL)
    return _redis_client
