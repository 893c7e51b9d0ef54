"""A token bucket per provider for the calls Cutover makes itself (shadow comparisons, evaluation runs), so
they never eat the rate limit that live traffic needs.

With REDIS_URL set the bucket lives in Redis (one Lua script: atomic, on Redis's clock), shared by every
worker process on every host. On the embedded defaults (no Redis) each process keeps its own bucket: with N
worker processes the provider sees up to N × the rate — set the rate per process accordingly (documented in
docs/evaluation-and-shadow.md). Rates come from settings.CUTOVER_OFFLINE_RATE_LIMITS ({provider: calls per
second}, with "default").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings

_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RateLimited(Exception):
    def __init__(self, provider: str, wait: float) -> None:
        self.provider = provider
        self.wait = wait
        super().__init__(f"the {provider} bucket for shadow and evaluation calls is empty for {wait:.1f} s more")


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float


def limit_for(provider: str) -> Limit:
    limits = settings.CUTOVER_OFFLINE_RATE_LIMITS
    rate = float(limits.get(provider, limits.get("default", 20.0)))
    return Limit(rate=rate, burst=max(rate * settings.CUTOVER_OFFLINE_BURST_SECONDS, 1.0))


class _LocalBucket:
    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.tokens = limit.burst
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Take a token now if there is one (returns 0), else return how long until there is one — without
        taking it, so a caller that gives up leaves the bucket as it was."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.limit.burst, self.tokens + (now - self.at) * self.limit.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.limit.rate


_local: dict[str, _LocalBucket] = {}
_local_lock = threading.Lock()
_redis = None
_script = None


def _redis_take(provider: str, limit: Limit) -> float:
    global _redis, _script
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(settings.REDIS_URL)
        _script = _redis.register_script(_LUA)
    return float(_script(keys=[f"cutover:ratelimit:{provider}"], args=[limit.rate, limit.burst]))


def _take(provider: str) -> float:
    limit = limit_for(provider)
    if limit.rate <= 0:
        return 0.0  # 0 means unlimited
    if settings.REDIS_URL:
        return _redis_take(provider, limit)
    with _local_lock:
        bucket = _local.get(provider)
        if bucket is None or bucket.limit != limit:
            bucket = _local[provider] = _LocalBucket(limit)
    return bucket.take()


def rate_limit_acquire(*, provider: str, max_wait: float | None = None) -> None:
    """Wait for a token of `provider`'s bucket; RateLimited when it would take longer than `max_wait`."""
    max_wait = settings.CUTOVER_OFFLINE_MAX_WAIT_SECONDS if max_wait is None else max_wait
    deadline = time.monotonic() + max_wait
    while True:
        wait = _take(provider)
        if wait <= 0:
            return
        if time.monotonic() + wait > deadline:
            raise RateLimited(provider, wait)
        time.sleep(min(wait, 0.25))


def rate_limit_reset() -> None:
    """Forget the per-process buckets (tests)."""
    with _local_lock:
        _local.clear()
