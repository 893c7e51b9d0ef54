"""The raw-HTTP async client for OpenAI-format endpoints (the sidecar's fast path), against the simulator:
it must answer, fail and retry exactly as the official-SDK ModelClient does for the same endpoint."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from cutover.providers import NO_RETRIES, ChatRequest, ErrorKind, Message, ModelClient, ProviderError, RetryPolicy
from cutover.providers.async_client import (
    OpenAIWireClient,
    ThreadedModelClient,
    make_async_client,
    pooled_http_client,
)
from cutover.simulator import ModelScript

WIRE_PROVIDERS = ("openai", "openai_compatible")
QUESTION = ChatRequest(messages=(Message("user", "Where is my refund for order 1234?"),), timeout=0.2)


async def _wire_call(endpoint, *, stream: bool, policy: RetryPolicy = NO_RETRIES, request: ChatRequest = QUESTION):
    async with pooled_http_client() as http:
        return await OpenAIWireClient(endpoint, retry_policy=policy, http=http).complete(request, stream=stream)


def wire_call(endpoint, **options):
    return asyncio.run(_wire_call(endpoint, **options))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("provider", WIRE_PROVIDERS)
def test_same_answer_as_the_official_sdk_client(provider, stream, simulator, endpoint_for):
    endpoint = endpoint_for(provider)

    official = ModelClient(endpoint, retry_policy=NO_RETRIES).complete(QUESTION, stream=stream)
    wire = wire_call(endpoint, stream=stream)

    assert (wire.text, wire.finish_reason, wire.input_tokens, wire.output_tokens, wire.cost_usd, wire.model) == (
        official.text, official.finish_reason, official.input_tokens, official.output_tokens, official.cost_usd,
        official.model)
    assert wire.request_id and wire.retries == 0
    if stream:
        assert wire.ttft_ms is not None and 0 < wire.ttft_ms <= wire.latency_ms
    # The body sent is the official adapter's (same builder): compare what the simulator received.
    first, second = simulator.recorded_requests(endpoint.model)[-2:]
    assert first.body == second.body


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_tool_calls__assembled_like_the_official_sdk(stream, simulator, endpoint_for):
    from cutover.providers import Tool

    endpoint = endpoint_for("openai")
    simulator.set_script(endpoint.model, ModelScript.from_dict(
        {"answer": {"kind": "tool_call", "json": {"order_id": "1234"}}}))
    request = ChatRequest(messages=QUESTION.messages, tools=(Tool("lookup_order"),), timeout=0.2)

    completion = wire_call(endpoint, stream=stream, request=request)

    assert completion.finish_reason == "tool_calls"
    assert [(c.name, c.parsed_arguments()) for c in completion.tool_calls] == [("lookup_order", {"order_id": "1234"})]


@pytest.mark.parametrize("kind", [kind.value for kind in ErrorKind])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_every_error_kind__classified_as_the_official_adapter_does(kind, stream, simulator, endpoint_for):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, [kind, kind])

    with pytest.raises(ProviderError) as official:
        ModelClient(endpoint, retry_policy=NO_RETRIES).complete(QUESTION, stream=stream)
    with pytest.raises(ProviderError) as wire:
        wire_call(endpoint, stream=stream)

    assert wire.value.kind == official.value.kind == kind
    assert (wire.value.status_code, wire.value.retry_after, wire.value.provider, wire.value.model) == (
        official.value.status_code, official.value.retry_after, "openai", endpoint.model)


def test_rate_limited_with_retry_after__waited_then_retried(simulator, endpoint_for):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, ["rate_limited", "rate_limited", "ok"])
    policy = RetryPolicy(max_retries=3, base_delay=5.0, max_delay=5.0)  # a backoff would take seconds

    completion = wire_call(endpoint, stream=False, policy=policy)

    assert completion.retries == 2 and completion.retry_delays == pytest.approx((0.05, 0.05))
    assert completion.latency_ms >= 100
    assert simulator.stats()[endpoint.model] == {"rate_limited": 2, "ok": 1}


@pytest.mark.parametrize("kind", ["bad_request", "auth"])
def test_permanent_errors__never_retried(kind, simulator, endpoint_for):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, [kind, "ok"])

    with pytest.raises(ProviderError) as raised:
        wire_call(endpoint, stream=False, policy=RetryPolicy(max_retries=3, base_delay=0.01))

    assert raised.value.kind == kind and raised.value.retries == 0
    assert simulator.stats()[endpoint.model] == {kind: 1}


def test_streamed_call_rate_limited__retried_before_any_text(simulator, endpoint_for):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, ["rate_limited", "ok"])

    completion = wire_call(endpoint, stream=True, policy=RetryPolicy(max_retries=2, base_delay=0.01))

    assert completion.text and completion.retries == 1 and completion.output_tokens > 0


def test_timeout__the_attempt_timeout_fires_and_is_retried(simulator, endpoint_for):
    endpoint = endpoint_for("openai")
    simulator.queue_outcomes(endpoint.model, ["timeout", "ok"])

    completion = wire_call(endpoint, stream=False, policy=RetryPolicy(max_retries=1, base_delay=0.01))

    assert completion.retries == 1 and completion.text


def test_only_openai_format_endpoints_take_the_raw_http_path(endpoint_for):
    async def build():
        async with pooled_http_client() as http:
            with ThreadPoolExecutor(1) as executor:
                return [type(make_async_client(endpoint_for(provider), retry_policy=NO_RETRIES, http=http,
                                               sync_client=lambda p=provider: ModelClient(endpoint_for(p)),
                                               executor=executor))
                        for provider in ("openai", "openai_compatible", "anthropic", "gemini")]

    assert asyncio.run(build()) == [OpenAIWireClient, OpenAIWireClient, ThreadedModelClient, ThreadedModelClient]
