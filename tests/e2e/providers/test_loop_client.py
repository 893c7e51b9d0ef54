"""Blocking calls from threads, made on one background event loop (cutover/providers/loop_client.py), against the
simulator: an OpenAI-format call answers, fails and retries exactly as the official-SDK ModelClient does; other
providers still go through their official SDKs; a forked process gets a loop of its own."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cutover.providers import NO_RETRIES, ChatRequest, ErrorKind, Message, ModelClient, ProviderError, RetryPolicy
from cutover.providers.loop_client import LoopClient

QUESTION = ChatRequest(messages=(Message("user", "Where is my refund for order 1234?"),), timeout=0.2)


@pytest.fixture
def loop_client():
    client = LoopClient()
    yield client
    client.close()


def on_the_loop(client: LoopClient) -> bool:
    return client._thread is not None and client._thread.is_alive()


@pytest.mark.parametrize("provider", ["openai", "openai_compatible"])
def test_openai_format__same_completion_as_the_official_sdk__made_on_the_loop(provider, simulator, endpoint_for,
                                                                              loop_client):
    endpoint = endpoint_for(provider)

    official = ModelClient(endpoint, retry_policy=NO_RETRIES).complete(QUESTION)
    fast = loop_client.complete(endpoint, QUESTION, retry_policy=NO_RETRIES)

    assert (fast.text, fast.finish_reason, fast.input_tokens, fast.output_tokens, fast.cost_usd, fast.model,
            fast.provider) == (official.text, official.finish_reason, official.input_tokens, official.output_tokens,
                               official.cost_usd, official.model, official.provider)
    assert fast.request_id and fast.retries == 0 and fast.latency_ms > 0
    assert on_the_loop(loop_client)
    first, second = simulator.recorded_requests(endpoint.model)[-2:]
    assert first.body == second.body  # the official adapter's body builder, on both paths


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_other_providers__answered_through_their_official_sdks_in_the_calling_thread(provider, endpoint_for,
                                                                                     loop_client):
    endpoint = endpoint_for(provider)

    completion = loop_client.complete(endpoint, QUESTION, retry_policy=NO_RETRIES)

    assert completion.text and completion.provider == provider
    assert not on_the_loop(loop_client)  # no loop was needed


@pytest.mark.parametrize("kind", [kind.value for kind in ErrorKind])
def test_every_error_kind__classified_as_the_official_adapter_does(kind, simulator, endpoint_for, loop_client):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, [kind, kind])

    with pytest.raises(ProviderError) as official:
        ModelClient(endpoint, retry_policy=NO_RETRIES).complete(QUESTION)
    with pytest.raises(ProviderError) as fast:
        loop_client.complete(endpoint, QUESTION, retry_policy=NO_RETRIES)

    assert fast.value.kind == official.value.kind == kind
    assert (fast.value.status_code, fast.value.retry_after, fast.value.provider, fast.value.model) == (
        official.value.status_code, official.value.retry_after, "openai", endpoint.model)


def test_retry_policy__the_same_decisions__retry_after_waited_then_retried(simulator, endpoint_for, loop_client):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, ["rate_limited", "server_error", "ok"])
    policy = RetryPolicy(max_retries=2, base_delay=0.02, max_delay=1.0, random=lambda: 0.5)

    completion = loop_client.complete(endpoint, QUESTION, retry_policy=policy)

    # The 429's Retry-After (0.05 s) exactly, then the policy's backoff for the 500: 0.5 × 0.02 × 2¹.
    assert completion.retries == 2 and completion.retry_delays == pytest.approx((0.05, 0.02))
    assert simulator.stats()[endpoint.model] == {"rate_limited": 1, "server_error": 1, "ok": 1}


def test_retries_used_up__the_last_error_raised_with_its_retry_count(simulator, endpoint_for, loop_client):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, ["server_error"] * 3)

    with pytest.raises(ProviderError) as raised:
        loop_client.complete(endpoint, QUESTION, retry_policy=RetryPolicy(max_retries=1, base_delay=0.01))

    assert raised.value.kind == ErrorKind.SERVER_ERROR and raised.value.retries == 1
    assert simulator.stats()[endpoint.model] == {"server_error": 2}


@pytest.mark.parametrize("kind", ["bad_request", "auth"])
def test_permanent_errors__never_retried(kind, simulator, endpoint_for, loop_client):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, [kind, "ok"])

    with pytest.raises(ProviderError) as raised:
        loop_client.complete(endpoint, QUESTION, retry_policy=RetryPolicy(max_retries=3, base_delay=0.01))

    assert raised.value.kind == kind and raised.value.retries == 0
    assert simulator.stats()[endpoint.model] == {kind: 1}


def test_timeout__the_attempt_timeout_fires_on_the_loop(simulator, endpoint_for, loop_client):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, ["timeout"])

    with pytest.raises(ProviderError) as raised:
        loop_client.complete(endpoint, QUESTION, retry_policy=NO_RETRIES)

    assert raised.value.kind == ErrorKind.TIMEOUT


def test_missing_api_key__auth_error_not_retried(endpoint_for, loop_client, monkeypatch):
    endpoint = endpoint_for("openai", api_key_env="CUTOVER_TEST_UNSET_KEY")
    monkeypatch.delenv("CUTOVER_TEST_UNSET_KEY", raising=False)

    with pytest.raises(ProviderError) as raised:
        loop_client.complete(endpoint, QUESTION, retry_policy=RetryPolicy(max_retries=3, base_delay=0.01))

    assert raised.value.kind == ErrorKind.AUTH and raised.value.retries == 0


def test_many_threads_at_once__every_call_answered_on_one_loop_over_kept_alive_connections(
        simulator, endpoint_for, loop_client):
    endpoint = endpoint_for("openai")
    threads_seen: set[str] = set()

    def call(i: int) -> str:
        threads_seen.add(threading.current_thread().name)
        request = ChatRequest(messages=(Message("user", f"Question {i}"),), timeout=5)
        return loop_client.complete(endpoint, request, retry_policy=NO_RETRIES).text

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(200)))

    assert len(answers) == 200 and all(answers)
    assert simulator.stats()[endpoint.model] == {"ok": 200}
    assert len(threads_seen) > 1
    idle = sum(len(connections) for connections in loop_client._http._idle.values())
    assert 0 < idle <= 16  # at most one connection per call in flight, kept for the next calls


def test_forked_process__starts_its_own_loop_and_leaves_the_parents_alone(endpoint_for, loop_client, monkeypatch):
    endpoint = endpoint_for("openai")
    loop_client.complete(endpoint, QUESTION, retry_policy=NO_RETRIES)
    parent_loop, parent_thread = loop_client._loop, loop_client._thread
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # what a forked child sees

    completion = loop_client.complete(endpoint, QUESTION, retry_policy=NO_RETRIES)

    assert completion.text
    assert loop_client._loop is not parent_loop and loop_client._thread is not parent_thread
    assert parent_loop.is_running() and not parent_loop.is_closed()  # untouched
    loop_client.close()  # the "child's" loop
    parent_loop.call_soon_threadsafe(parent_loop.stop)  # (in a real child the parent's does not exist)
    parent_thread.join(5)
    parent_loop.close()
