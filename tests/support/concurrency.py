"""Running the same work in several threads at once, as several processes of Cutover would."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_at_once(work: Callable[[], Any], *, threads: int = 2, timeout: float = 60) -> list[Any]:
    """Start `work` in `threads` threads released together; wait for all and return their results.
    An exception in any thread is re-raised here, so a crash fails the calling test."""
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=timeout)
            results.append(work())
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            failures.append(error)
        finally:
            connection.close()  # each thread has its own database connection

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=timeout)
    if failures:
        raise failures[0]
    assert len(results) == threads, "a thread did not finish in time"
    return results
