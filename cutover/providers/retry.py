"""Retries with capped exponential backoff and full jitter, honouring Retry-After.

Our layer is the only one: every adapter builds its SDK client with the SDK's own retries off, so
that the retry count and delays we report are the real ones.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cutover.providers.errors import RETRYABLE_KINDS, ErrorKind, ProviderError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attempt n (0-based) waits uniform(0, min(max_delay, base_delay * 2**n)) — "full jitter" spreads
    a burst of clients that failed together. A Retry-After from the provider is waited exactly,
    unless it is longer than `max_retry_after`: then we give up at once, since waiting less would
    only buy another 429.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    retry_on: frozenset[ErrorKind] = RETRYABLE_KINDS
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    random: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        never = {ErrorKind.BAD_REQUEST, ErrorKind.AUTH} & set(self.retry_on)
        if never:
            raise ValueError(f"refusing to retry {sorted(never)}: the same request would fail again")

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return self.random() * ceiling

    def delay_for(self, error: ProviderError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to stop retrying."""
        if error.kind not in self.retry_on or attempt >= self.max_retries:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        return self.backoff(attempt)


NO_RETRIES = RetryPolicy(max_retries=0)


@dataclass(frozen=True, slots=True)
class RetryOutcome(Generic[T]):
    value: T
    retries: int
    delays: tuple[float, ...]


def call_with_retries(operation: Callable[[], T], policy: RetryPolicy) -> RetryOutcome[T]:
    """Run `operation` until it succeeds or the policy says stop.

    Only ProviderError is retried; anything else is a bug and propagates at once. The error that
    finally escapes carries the retry count and the delays waited.
    """
    delays: list[float] = []
    attempt = 0
    while True:
        try:
            value = operation()
        except ProviderError as error:
            delay = policy.delay_for(error, attempt)
            if delay is None:
                error.retries = attempt
                error.retry_delays = tuple(delays)
                raise
            delays.append(delay)
            policy.sleep(delay)
            attempt += 1
            continue
        return RetryOutcome(value=value, retries=attempt, delays=tuple(delays))


async def acall_with_retries(operation: Callable[[], Awaitable[T]], policy: RetryPolicy) -> RetryOutcome[T]:
    """`call_with_retries` for a coroutine: the same policy decisions (`delay_for`), waited with
    asyncio.sleep so that the event loop keeps serving other requests meanwhile."""
    delays: list[float] = []
    attempt = 0
    while True:
        try:
            value = await operation()
        except ProviderError as error:
            delay = policy.delay_for(error, attempt)
            if delay is None:
                error.retries = attempt
                error.retry_delays = tuple(delays)
                raise
            delays.append(delay)
            await asyncio.sleep(delay)
            attempt += 1
            continue
        return RetryOutcome(value=value, retries=attempt, delays=tuple(delays))
