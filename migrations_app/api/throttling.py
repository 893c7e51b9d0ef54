"""Rate limits on the SDK endpoints, per SDK key (its prefix) and per scope of endpoint.

A fixed window counted in the cache: one `incr` on a warm request (an `add` opens each window), so the
config poll stays free of SQL and costs one cache round trip. A key over its limit gets 429 with
Retry-After (the seconds left in the window). Rates come from settings.CUTOVER_SDK_RATE_LIMITS at request
time, e.g. {"config": "1200/min", "events": "600/min"}; a scope missing or set to 0 is not limited. A cache
that is down lets requests through (logged): the limit protects the control plane, it must not take the SDK
path down with the cache."""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from ..selectors import SDKPrincipal

logger = logging.getLogger("migrations_app.api")
CACHE_PREFIX = "cutover:throttle"

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
            "d": 86400, "day": 86400}


def parse_rate(rate: str | int | None) -> tuple[int, int] | None:
    """"1200/min" → (1200, 60); None, "", "0" or 0 → None (unlimited)."""
    if rate in (None, "", 0, "0"):
        return None
    count, _, period = str(rate).partition("/")
    number, unit = "".join(ch for ch in period if ch.isdigit()), period.lstrip("0123456789").strip().lower()
    seconds = _PERIODS.get(unit or "s")
    if seconds is None or not count.strip().isdigit():
        raise ValueError(f"bad rate {rate!r}: use N/s, N/min, N/hour or N/day (e.g. 1200/min)")
    limit = int(count)
    return (limit, seconds * (int(number) if number else 1)) if limit > 0 else None


@dataclass(frozen=True)
class RateWindow:
    """The current fixed window of one key's limit for one scope, and the cache counter that counts it."""

    counter_key: str
    limit: int
    period: int
    ends_at: float  # time.time()

    def wait_after(self, count: int) -> float | None:
        """None when `count` requests fit the limit, else the seconds until the window ends (Retry-After)."""
        return None if count <= self.limit else max(1.0, self.ends_at - time.time())


def rate_window(key_prefix: str, scope: str) -> RateWindow | None:
    """The window now, or None when the scope is not limited."""
    rate = parse_rate(getattr(settings, "CUTOVER_SDK_RATE_LIMITS", {}).get(scope))
    if rate is None:
        return None
    limit, period = rate
    window = int(time.time() // period)
    return RateWindow(f"{CACHE_PREFIX}:{scope}:{key_prefix}:{period}:{window}", limit, period, (window + 1) * period)


def count_request(window: RateWindow) -> int:
    """Count one request in the window; the count so far. Raises the cache's errors."""
    try:
        return cache.incr(window.counter_key)
    except ValueError:  # the window's first request (or the counter expired)
        return 1 if cache.add(window.counter_key, 1, timeout=window.period + 1) else cache.incr(window.counter_key)


def sdk_rate_limit_count(key_prefix: str, scope: str) -> float | None:
    """Count one request of the key against its limit for `scope`: None when it is within the limit (or
    the scope is unlimited, or the cache is down), else the seconds until the window ends (Retry-After)."""
    window = rate_window(key_prefix, scope)
    if window is None:
        return None
    try:
        count = count_request(window)
    except Exception as error:  # redis-py's and the file cache's errors share no base class
        logger.warning("cache unavailable, SDK rate limit not applied: %s: %s", type(error).__name__, error)
        return None
    return window.wait_after(count)


# Set in the WSGI environ by the config poll's fast path (api/config_poll.py) when it counted a request it
# then handed to Django: its Retry-After or None. No client can set it (headers arrive as HTTP_*).
ALREADY_COUNTED = "cutover.rate_limit_already_counted"


class SDKKeyRateThrottle(BaseThrottle):
    """Per SDK key and `view.throttle_scope`."""

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request, view) -> bool:
        principal = request.user
        scope = getattr(view, "throttle_scope", None)
        if not isinstance(principal, SDKPrincipal) or scope is None:
            return True
        if ALREADY_COUNTED in request.META:
            self.wait_seconds = request.META[ALREADY_COUNTED]
        else:
            self.wait_seconds = sdk_rate_limit_count(principal.prefix, scope)
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds
