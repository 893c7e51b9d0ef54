"""Rate limits on the SDK endpoints, per SDK key (its prefix) and per scope of endpoint.

A fixed window counted in the cache: one `incr` on a warm request (an `add` opens each window), so the
config poll stays free of SQL and costs one cache round trip. A key over its limit gets 429 with
Retry-After (the seconds left in the window). Rates come from settings.CUTOVER_SDK_RATE_LIMITS at request
time, e.g. {"config": "1200/min", "events": "600/min"}; a scope missing or set to 0 is not limited. A cache
that is down lets requests through (logged): the limit protects the control plane, it must not take the SDK
path down with the cache."""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from ..selectors import SDKPrincipal

logger = logging.getLogger("migrations_app.api")

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


class SDKKeyRateThrottle(BaseThrottle):
    """Per SDK key and `view.throttle_scope`."""

    cache_prefix = "cutover:throttle"

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request, view) -> bool:
        principal = request.user
        scope = getattr(view, "throttle_scope", None)
        if not isinstance(principal, SDKPrincipal) or scope is None:
            return True
        rate = parse_rate(getattr(settings, "CUTOVER_SDK_RATE_LIMITS", {}).get(scope))
        if rate is None:
            return True
        limit, period = rate
        now = time.time()
        window = int(now // period)
        key = f"{self.cache_prefix}:{scope}:{principal.prefix}:{period}:{window}"
        try:
            try:
                count = cache.incr(key)
            except ValueError:  # the window's first request (or the counter expired)
                count = 1 if cache.add(key, 1, timeout=period + 1) else cache.incr(key)
        except Exception as error:  # redis-py's and the file cache's errors share no base class
            logger.warning("cache unavailable, SDK rate limit not applied: %s: %s", type(error).__name__, error)
            return True
        if count <= limit:
            return True
        self.wait_seconds = max(1.0, (window + 1) * period - now)
        return False

    def wait(self) -> float | None:
        return self.wait_seconds
