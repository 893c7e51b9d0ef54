"""The event reporter against a local HTTP sink: batching, retries, drops, partial 400s, flush on close."""

import json
import threading
import time
import uuid

import pytest

from cutover.sdk.reporter import EVENTS_PATH, event_reporter, shadow_mirror
from tests.support.http_sink import HttpSink


@pytest.fixture
def sink():
    with HttpSink(default_status=202, default_body=b'{"accepted": 1, "duplicate": 0}') as server:
        yield server


def event(n=0):
    return {"id": str(uuid.uuid4()), "plan": "p", "arm": "baseline", "n": n}


def test_reporter__by_size__one_batch(sink):
    reporter = event_reporter(sink.url, "k", batch_size=10, flush_interval=30).start()
    for i in range(10):
        reporter.record(event(i))
    [request] = sink.wait_for(1, timeout=3)
    assert request.path == EVENTS_PATH and request.header("Authorization") == "Bearer k"
    assert [e["n"] for e in request.json()["events"]] == list(range(10))
    reporter.close()


def test_reporter__by_time__flushed_within_the_interval(sink):
    reporter = event_reporter(sink.url, "k", batch_size=100, flush_interval=0.1).start()
    reporter.record(event())
    started = time.monotonic()
    sink.wait_for(1, timeout=2)
    assert time.monotonic() - started < 1
    reporter.close()


def test_reporter__500_then_202__retried_same_ids(sink):
    sink.respond_with(500, 503)
    reporter = event_reporter(sink.url, "k", batch_size=3, flush_interval=0.05, backoff_base=0.01).start()
    for i in range(3):
        reporter.record(event(i))
    requests = sink.wait_for(3, timeout=3)
    ids = [[e["id"] for e in r.json()["events"]] for r in requests]
    assert ids[0] == ids[1] == ids[2]
    reporter.close()
    assert reporter.stats.sent == 3 and reporter.stats.failures == 2 and reporter.stats.dropped == 0


def test_reporter__queue_full__drops_counts_and_never_blocks(sink):
    sink.respond_with(500, delay=0.5)
    reporter = event_reporter(sink.url, "k", max_queue=5, batch_size=1, flush_interval=0.01,
                              backoff_base=0.01).start()
    started = time.perf_counter()
    accepted = [reporter.record(event(i)) for i in range(100)]
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05 and accepted.count(False) >= 90
    assert reporter.stats.dropped == accepted.count(False)
    reporter.close(timeout=2)


def test_reporter__400_naming_one_event__resends_the_rest(sink):
    errors = json.dumps({"events": [{}, {"latency_ms": ["must be a number ≥ 0"]}, {}]}).encode()
    sink.respond_with(400, body=errors)
    reporter = event_reporter(sink.url, "k", batch_size=3, flush_interval=0.05).start()
    batch = [event(i) for i in range(3)]
    for item in batch:
        reporter.record(item)
    first, second = sink.wait_for(2, timeout=3)
    assert [e["n"] for e in second.json()["events"]] == [0, 2]
    reporter.close()
    assert reporter.stats.rejected == 1 and reporter.stats.sent == 2


def test_reporter__close__flushes_what_is_queued(sink):
    reporter = event_reporter(sink.url, "k", batch_size=1000, flush_interval=60).start()
    for i in range(250):
        reporter.record(event(i))
    reporter.close(timeout=5)
    assert sum(len(r.json()["events"]) for r in sink.requests) == 250
    assert reporter.stats.sent == 250


def test_reporter__control_plane_down_at_close__gives_up_by_the_deadline():
    reporter = event_reporter("http://127.0.0.1:9", "k", flush_interval=0.01, backoff_base=0.05).start()
    reporter.record(event())
    started = time.monotonic()
    reporter.close(timeout=0.5)
    assert time.monotonic() - started < 2 and reporter.stats.dropped == 1


def test_reporter__many_threads__every_event_once(sink):
    reporter = event_reporter(sink.url, "k", batch_size=50, flush_interval=0.05).start()

    def produce():
        for i in range(200):
            reporter.record(event(i))

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reporter.close()
    ids = [e["id"] for r in sink.requests for e in r.json()["events"]]
    assert len(ids) == len(set(ids)) == 800


def test_shadow__one_post_per_sample__gives_up_after_three_attempts(sink):
    sink.respond_with(500, 500, 500)
    mirror = shadow_mirror(sink.url, "k", backoff_base=0.01).start()
    mirror.record({"plan": "p", "request_id": "1"})
    sink.wait_for(3, timeout=3)
    mirror.record({"plan": "p", "request_id": "2"})
    fourth = sink.wait_for(4, timeout=3)[3]
    assert fourth.path == "/api/v1/sdk/shadow" and fourth.json()["request_id"] == "2"
    mirror.close()
    assert mirror.stats.dropped == 1 and mirror.stats.sent == 1
