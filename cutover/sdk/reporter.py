"""Background delivery to the control plane: per-request events (batched) and shadow samples.

`record()` never blocks and never raises: it appends to a bounded queue, or drops and counts when the
queue is full. One daemon thread sends by size or every `flush_interval` seconds and retries a failed
batch with jittered exponential backoff (honouring Retry-After). Event ids make a retried batch
idempotent on the server, so every event is stored exactly once. `close()` flushes what is queued.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from cutover.sdk.transport import Backoff, ControlPlaneHTTP, retry_after_of

logger = logging.getLogger("cutover.sdk.reporter")

EVENTS_PATH = "/api/v1/sdk/events"
SHADOW_PATH = "/api/v1/sdk/shadow"


@dataclass
class SenderStats:
    queued: int = 0
    sent: int = 0  # items the control plane accepted (or already had)
    dropped: int = 0  # queue full, or abandoned when closing / after max_attempts
    rejected: int = 0  # refused by the control plane as malformed (400)
    failures: int = 0  # failed attempts (each retried)


class BackgroundSender:
    """A bounded queue drained by one thread. `body_for(items)` builds a request body for a batch."""

    def __init__(self, control_plane: str, sdk_key: str, path: str, *, body_for: Callable[[list[Any]], Any],
                 max_queue: int = 10_000, batch_size: int = 100, flush_interval: float = 1.0,
                 max_attempts: int | None = None, backoff_base: float = 0.2, backoff_max: float = 30.0,
                 name: str = "cutover-sender", transport: httpx.BaseTransport | None = None) -> None:
        self.control_plane = control_plane
        self._sdk_key = sdk_key
        self.path = path
        self._body_for = body_for
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_attempts = max_attempts
        self._backoff = Backoff(backoff_base, backoff_max, max_retry_after=60.0)
        self._transport = transport
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        self._flush_now = False
        self._closing = False
        self._close_deadline = float("inf")
        self.stats = SenderStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> BackgroundSender:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()
        return self

    # --- the request path ----------------------------------------------------------------------------

    def record(self, item: Any) -> bool:
        """Queue one item; False (and counted) when the queue is full or the sender closed."""
        with self._lock:
            if self._closing or len(self._queue) >= self.max_queue:
                self.stats.dropped += 1
                return False
            self._queue.append(item)
            self.stats.queued += 1
            if len(self._queue) >= self.batch_size:
                self._wake.notify()
        return True

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._inflight

    # --- flushing and closing ------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued now; True when all of it was delivered (or given up) in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flush_now = True
            self._wake.notify()
            while self._queue or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush, then stop. Whatever is still undelivered after `timeout` seconds is dropped and counted."""
        with self._lock:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._wake.notify()
        if self._started:
            self._thread.join(timeout + 1.0)
        with self._lock:
            if self._queue:
                self.stats.dropped += len(self._queue)
                self._queue.clear()

    # --- the thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        http = ControlPlaneHTTP(self.control_plane, self._sdk_key, transport=self._transport)
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._deliver(http, batch)
                with self._lock:
                    self._inflight = 0
                    self._idle.notify_all()
        finally:
            http.close()

    def _next_batch(self) -> list[Any] | None:
        with self._lock:
            deadline = time.monotonic() + self.flush_interval
            while len(self._queue) < self.batch_size and not self._flush_now and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            if not self._queue:
                self._flush_now = False
                self._idle.notify_all()
                return None if self._closing else []
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            if not self._queue:
                self._flush_now = False
            self._inflight = len(batch)
            return batch

    def _deliver(self, http: ControlPlaneHTTP, batch: list[Any]) -> None:
        if not batch:
            return
        attempts = 0
        self._backoff.reset()
        while batch:
            attempts += 1
            retry_after = None
            try:
                response = http.post_json(self.path, json.dumps(self._body_for(batch), default=str).encode())
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 300:
                    self.stats.sent += len(batch)
                    return
                if response.status_code == 400:
                    batch = self._without_rejected(batch, response)
                    continue
                problem = f"HTTP {response.status_code}"
                retry_after = retry_after_of(response)
            self.stats.failures += 1
            out_of_attempts = self.max_attempts is not None and attempts >= self.max_attempts
            delay = self._backoff.next_delay(retry_after)
            if out_of_attempts or time.monotonic() + delay > self._close_deadline:
                logger.warning("cutover %s: dropping %d item(s) after %d attempt(s): %s",
                               self.path, len(batch), attempts, problem)
                self.stats.dropped += len(batch)
                return
            logger.info("cutover %s: attempt %d failed (%s); retrying in %.2f s", self.path, attempts, problem, delay)
            with self._lock:
                # Sleep, but wake for close() so that its deadline is respected.
                wake_at = time.monotonic() + delay
                self._wake.wait_for(lambda: self._closing and wake_at > self._close_deadline,  # noqa: B023
                                    timeout=delay)

    def _without_rejected(self, batch: list[Any], response: httpx.Response) -> list[Any]:
        """A 400 refuses the batch whole, naming each bad item: drop those (counted), resend the rest."""
        errors: Sequence[Any] | None = None
        try:
            detail = response.json()
            listed = next(iter(detail.values())) if isinstance(detail, dict) and len(detail) == 1 else None
            if isinstance(listed, list) and len(listed) == len(batch) and all(isinstance(e, dict) for e in listed):
                errors = listed
        except ValueError:
            pass
        if errors is None or not any(errors):
            logger.warning("cutover %s: the control plane refused a batch of %d: %s", self.path, len(batch),
                           response.text[:500])
            self.stats.rejected += len(batch)
            return []
        kept = [item for item, error in zip(batch, errors, strict=True) if not error]
        self.stats.rejected += len(batch) - len(kept)
        logger.warning("cutover %s: the control plane refused %d item(s): %s", self.path, len(batch) - len(kept),
                       [e for e in errors if e][:3])
        return kept


def event_reporter(control_plane: str, sdk_key: str, **options: Any) -> BackgroundSender:
    """Per-request events, batched as `{"events": [...]}`; retried until delivered or closed."""
    options.setdefault("name", "cutover-reporter")
    return BackgroundSender(control_plane, sdk_key, EVENTS_PATH, body_for=lambda items: {"events": items},
                            **options)


def shadow_mirror(control_plane: str, sdk_key: str, **options: Any) -> BackgroundSender:
    """Shadow samples, one per request, best effort (a few attempts, then dropped and counted)."""
    options.setdefault("name", "cutover-shadow")
    options.setdefault("max_queue", 1000)
    options.setdefault("max_attempts", 3)
    options["batch_size"] = 1
    return BackgroundSender(control_plane, sdk_key, SHADOW_PATH, body_for=lambda items: items[0], **options)
