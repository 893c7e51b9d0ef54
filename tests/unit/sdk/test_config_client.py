"""The config client against a local HTTP sink: ETag, garbage, 401s, Retry-After, bootstrap file."""

import json
import time

import pytest

from cutover.sdk.config import ConfigClient, ConfigState
from cutover.sdk.transport import Backoff
from tests.support.http_sink import HttpSink
from tests.unit.sdk.test_document import GOOD


def doc(version=42, percent=5.0):
    data = json.loads(json.dumps(GOOD))
    data["version"] = version
    data["plans"][0]["candidate_percent"] = percent
    return json.dumps(data).encode()


@pytest.fixture
def sink():
    with HttpSink(default_status=304, default_body=b"") as server:
        yield server


def fast_client(sink, **options):
    return ConfigClient(sink.url, "sdk-secret", wait=5, backoff_base=0.02, backoff_max=0.05,
                        auth_backoff_base=0.3, auth_backoff_max=0.3, min_poll_interval=0.05, **options)


def test_config__first_poll__valid_with_document_and_bearer_key(sink):
    sink.respond_with(200, headers={"ETag": '"42"'}, body=doc())
    client = fast_client(sink).start()
    try:
        assert client.wait_for_version(lambda d: d.version == 42, 3)
        first, second = sink.wait_for(2)
        assert first.header("Authorization") == "Bearer sdk-secret" and "wait" not in first.path
        assert second.header("If-None-Match") == '"42"' and "wait=5" in second.path
        assert client.state is ConfigState.VALID and client.document_age < 1
    finally:
        client.close()


def test_config__garbage_then_malformed__keeps_last_good_and_says_interrupted(sink):
    sink.respond_with(200, headers={"ETag": '"42"'}, body=doc())
    client = fast_client(sink).start()
    try:
        assert client.wait_for_version(lambda d: d.version == 42, 3)
        sink.respond_with(200, 200, 500, body=b"<html>garbage</html>")
        time.sleep(0.05)
        sink.respond_with(200, body=json.dumps({"version": 43, "plans": [{"key": "x"}]}).encode())
        deadline = time.monotonic() + 3
        while client.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.version == 42 and client.plan("support-bot").candidate_percent == 5.0
        assert client.failures >= 3
    finally:
        client.close()


def test_config__control_plane_down__interrupted_routes_on_nothing(sink):
    url = sink.url
    sink.stop()
    client = ConfigClient(url, "k", backoff_base=0.01, backoff_max=0.02).start()
    try:
        assert client.wait_until_ready(3)
        time.sleep(0.1)
        assert client.state is ConfigState.INTERRUPTED and client.document is None and client.failures >= 2
        assert "unreachable" in client.last_error
    finally:
        client.close()


def test_config__401__keeps_trying_at_the_slower_rate(sink):
    sink.respond_with(401, 401, 401, 401, 401, 401, body=b'{"detail": "bad key"}')
    client = fast_client(sink).start()
    try:
        time.sleep(0.5)
        # auth backoff: up to 0.3 s full jitter — a handful of tries in 0.5 s; the normal 0.02 s would make ~25+
        assert 1 <= len(sink.requests) <= 12 and client.state is ConfigState.INTERRUPTED
    finally:
        client.close()


def test_backoff__retry_after__waited_exactly():
    backoff = Backoff(0.5, 30, rand=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.next_delay(retry_after=7) == 7
    assert Backoff(0.5, 1, rand=lambda: 1.0).next_delay() <= 1


def test_config__503_with_retry_after__waits_it(sink):
    sink.respond_with(503, headers={"Retry-After": "0.4"})
    sink.respond_with(200, headers={"ETag": '"42"'}, body=doc())
    client = fast_client(sink).start()
    try:
        assert client.wait_for_version(lambda d: d.version == 42, 3)
        first, second = sink.wait_for(2)
        assert second.received_at - first.received_at >= 0.35
    finally:
        client.close()


def test_config__bootstrap_file__used_before_and_without_the_control_plane(sink, tmp_path):
    path = tmp_path / "cutover-config.json"
    sink.respond_with(200, headers={"ETag": '"42"'}, body=doc())
    client = fast_client(sink, bootstrap_file=path).start()
    assert client.wait_for_version(lambda d: d.version == 42, 3)
    client.close()
    assert json.loads(path.read_text())["document"]["version"] == 42

    url = sink.url
    sink.stop()
    restarted = ConfigClient(url, "k", bootstrap_file=path, backoff_base=0.01, backoff_max=0.02)
    assert restarted.version == 42 and restarted.state is ConfigState.INITIALIZING
    restarted.start()
    try:
        assert restarted.wait_until_ready(3)
        assert restarted.state is ConfigState.INTERRUPTED and restarted.version == 42
        assert restarted.document_age is not None
    finally:
        restarted.close()


def test_config__corrupt_bootstrap_file__ignored(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    assert ConfigClient("http://127.0.0.1:9", "k", bootstrap_file=path).document is None
