"""Each official SDK, through our adapters, against the simulator over real HTTP on loopback."""

from __future__ import annotations

import json

import pytest

from cutover.providers import (
    NO_RETRIES,
    ChatRequest,
    ErrorKind,
    FinishReason,
    Message,
    ModelClient,
    ProviderError,
    Tool,
    complete,
)
from cutover.providers.pricing import cost_usd
from cutover.simulator import ModelScript
from cutover.simulator.scenario import UsageSpec

from .conftest import PROVIDERS

ALL_ERROR_KINDS = [kind.value for kind in ErrorKind]
QUESTION = "Where is my refund for order 1234?"


def ask(text: str = QUESTION, **fields: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), timeout=0.2, **fields)  # type: ignore[arg-type]


# --- the normalised Completion --------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_call__completion_has_text_usage_cost_and_request_id(provider, simulator, endpoint_for):
    # Given a model that answers from a template and reports fixed usage
    endpoint = endpoint_for(provider)
    simulator.set_script(endpoint.model, ModelScript.from_dict({
        "answer": {"kind": "template", "template": "Your refund for: {last_user}"},
        "usage": {"input_tokens": 1200, "output_tokens": 300},
    }))

    # When we call it
    completion = complete(endpoint, ask(system="You are a support agent."), retry_policy=NO_RETRIES)

    # Then every field is normalised
    assert completion.text == f"Your refund for: {QUESTION}"
    assert completion.finish_reason == FinishReason.STOP
    assert (completion.input_tokens, completion.output_tokens) == (1200, 300)
    assert completion.cost_usd == pytest.approx(1200 * 3.0 / 1e6 + 300 * 15.0 / 1e6)
    assert completion.request_id and "sim" in completion.request_id
    assert completion.latency_ms > 0
    assert completion.ttft_ms is None
    assert completion.retries == 0 and completion.retry_delays == ()
    assert completion.provider == provider and completion.model == endpoint.model
    assert completion.raw


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_call__same_answer_as_plain_and_time_to_first_token_measured(provider, simulator, endpoint_for):
    # Given a model whose first token comes after ~40 ms and whose whole answer takes ~120 ms
    endpoint = endpoint_for(provider)
    simulator.set_script(endpoint.model, ModelScript.from_dict({
        "latency": {"median_ms": 120}, "ttft": {"median_ms": 40}, "stream_chunk_words": 2,
    }))
    client = ModelClient(endpoint, retry_policy=NO_RETRIES)

    plain = client.complete(ask())
    streamed = client.stream(ask())
    pieces = list(streamed)
    completion = streamed.completion

    assert len(pieces) > 1, "the text should arrive in several pieces"
    assert "".join(pieces) == completion.text == plain.text
    assert (completion.input_tokens, completion.output_tokens) == (plain.input_tokens, plain.output_tokens)
    assert completion.finish_reason == FinishReason.STOP
    assert completion.cost_usd == plain.cost_usd > 0
    assert 35 <= completion.ttft_ms < completion.latency_ms
    assert completion.latency_ms >= 110
    assert completion.request_id


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_answer_cut_by_max_tokens__finish_reason_length(provider, stream, simulator, endpoint_for):
    endpoint = endpoint_for(provider)
    simulator.set_script(endpoint.model, ModelScript.from_dict({"answer": {"words": 60}}))

    completion = complete(endpoint, ask(max_tokens=10), stream=stream, retry_policy=NO_RETRIES)

    assert completion.finish_reason == FinishReason.LENGTH
    assert completion.output_tokens == 10


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_model_calls_a_tool__finish_reason_tool_calls_with_parsed_arguments(provider, stream, simulator,
                                                                           endpoint_for):
    endpoint = endpoint_for(provider)
    simulator.set_script(endpoint.model, ModelScript.from_dict(
        {"answer": {"kind": "tool_call", "json": {"order_id": "1234"}}}))
    lookup = Tool("lookup_order", "Find an order by id",
                  {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]})

    completion = complete(endpoint, ask(tools=(lookup,)), stream=stream, retry_policy=NO_RETRIES)

    assert completion.finish_reason == FinishReason.TOOL_CALLS
    assert [(c.name, c.parsed_arguments()) for c in completion.tool_calls] == [("lookup_order", {"order_id": "1234"})]


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_ERROR_KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_error_kind__normalised_to_the_taxonomy(provider, stream, kind, simulator, endpoint_for):
    # Given the simulator fails the next request in the provider's own wire format
    endpoint = endpoint_for(provider)
    simulator.queue_outcomes(endpoint.model, [kind])

    # When we call without retries
    with pytest.raises(ProviderError) as raised:
        complete(endpoint, ask(), stream=stream, retry_policy=NO_RETRIES)

    # Then the SDK's exception became our error kind
    error = raised.value
    assert error.kind == kind
    assert error.provider == provider and error.model == endpoint.model
    assert error.retries == 0
    if kind == "rate_limited":
        assert error.retry_after == pytest.approx(0.05)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limited_with_retry_after__retried_after_that_delay(provider, simulator, endpoint_for, policy,
                                                                 recorded_sleep):
    endpoint = endpoint_for(provider)
    simulator.queue_outcomes(endpoint.model, ["rate_limited", "rate_limited", "ok"])

    completion = ModelClient(endpoint, retry_policy=policy).complete(ask())

    assert completion.retries == 2
    assert completion.retry_delays == pytest.approx((0.05, 0.05))
    assert recorded_sleep.delays == pytest.approx([0.05, 0.05])
    assert simulator.stats()[endpoint.model] == {"rate_limited": 2, "ok": 1}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_server_errors__retried_with_exponential_backoff(provider, simulator, endpoint_for, policy, recorded_sleep):
    # Jitter is pinned at 0.5, so delays are half of 0.1 * 2**n
    endpoint = endpoint_for(provider)
    simulator.queue_outcomes(endpoint.model, ["server_error", "server_error", "server_error", "ok"])

    completion = ModelClient(endpoint, retry_policy=policy).complete(ask())

    assert completion.retries == 3
    assert recorded_sleep.delays == pytest.approx([0.05, 0.1, 0.2])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_timeout__client_timeout_fires_and_the_call_is_retried(provider, simulator, endpoint_for, policy):
    # The simulator holds the first answer for 1.5 s; the client gives up after 0.2 s and retries
    endpoint = endpoint_for(provider)
    simulator.queue_outcomes(endpoint.model, ["timeout", "ok"])

    completion = ModelClient(endpoint, retry_policy=policy).complete(ask())

    assert completion.retries == 1
    assert completion.latency_ms < 1000, "the client's own timeout, not the simulator, ended the first attempt"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_call_rate_limited__retried_before_any_text(provider, simulator, endpoint_for, policy):
    endpoint = endpoint_for(provider)
    simulator.queue_outcomes(endpoint.model, ["rate_limited", "ok"])

    completion = ModelClient(endpoint, retry_policy=policy).complete(ask(), stream=True)

    assert completion.retries == 1
    assert completion.text


@pytest.mark.parametrize("kind", ["bad_request", "auth", "context_length_exceeded", "content_filter"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_permanent_errors__never_retried(provider, kind, simulator, endpoint_for, policy, recorded_sleep):
    endpoint = endpoint_for(provider)
    simulator.queue_outcomes(endpoint.model, [kind, "ok"])

    with pytest.raises(ProviderError) as raised:
        ModelClient(endpoint, retry_policy=policy).complete(ask())

    assert raised.value.kind == kind
    assert raised.value.retries == 0
    assert recorded_sleep.delays == []
    assert sum(simulator.stats()[endpoint.model].values()) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_exhausted__error_carries_retry_count_and_delays(provider, simulator, endpoint_for, policy):
    endpoint = endpoint_for(provider)
    simulator.queue_outcomes(endpoint.model, ["server_error"] * 4)

    with pytest.raises(ProviderError) as raised:
        ModelClient(endpoint, retry_policy=policy).complete(ask())

    assert raised.value.kind == ErrorKind.SERVER_ERROR
    assert raised.value.retries == 3
    assert raised.value.retry_delays == pytest.approx((0.05, 0.1, 0.2))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_prompt_over_the_models_context_window__context_length_exceeded(provider, simulator, endpoint_for):
    endpoint = endpoint_for(provider)
    simulator.set_script(endpoint.model, ModelScript(context_window=50, usage=UsageSpec(chars_per_token=4)))

    with pytest.raises(ProviderError) as raised:
        complete(endpoint, ask("word " * 100), retry_policy=NO_RETRIES)

    assert raised.value.kind == ErrorKind.CONTEXT_LENGTH_EXCEEDED


# --- what goes on the wire ------------------------------------------------------------------------------


CONVERSATION = ChatRequest(
    system="You are a billing assistant.",
    messages=(
        Message("user", "I was charged twice."),
        Message("assistant", "I can help. Which order?"),
        Message("user", "Order 1234."),
    ),
    max_tokens=300,
    temperature=0.2,
    stop=("###",),
    response_format="json",
    timeout=2,
)


def test_openai__system_prompt_is_the_first_message_and_json_mode_requested(simulator, endpoint_for):
    endpoint = endpoint_for("openai")
    complete(endpoint, CONVERSATION, retry_policy=NO_RETRIES)

    (sent,) = simulator.recorded_requests(endpoint.model)
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "assistant", "user"]
    assert sent.body["messages"][0]["content"] == "You are a billing assistant."
    assert sent.body["max_completion_tokens"] == 300
    assert sent.body["temperature"] == 0.2 and sent.body["stop"] == ["###"]
    assert sent.body["response_format"] == {"type": "json_object"}
    assert sent.headers["authorization"] == "Bearer sim-key"


def test_openai_compatible__any_base_url_and_max_tokens_sent_by_its_classic_name(simulator, endpoint_for):
    endpoint = endpoint_for("openai_compatible", model="llama-3-70b")
    completion = complete(endpoint, CONVERSATION, retry_policy=NO_RETRIES)

    (sent,) = simulator.recorded_requests("llama-3-70b")
    assert sent.body["max_tokens"] == 300 and "max_completion_tokens" not in sent.body
    assert completion.provider == "openai_compatible"


def test_anthropic__system_prompt_lifted_out_of_the_messages_and_max_tokens_always_sent(simulator, endpoint_for):
    endpoint = endpoint_for("anthropic")
    without_max_tokens = ChatRequest(messages=(Message("system", "Be brief."), Message("user", "Hi")))
    complete(endpoint, CONVERSATION, retry_policy=NO_RETRIES)
    complete(endpoint, without_max_tokens, retry_policy=NO_RETRIES)

    first, second = simulator.recorded_requests(endpoint.model)
    assert first.body["system"].startswith("You are a billing assistant.")
    assert "JSON" in first.body["system"], "Claude has no JSON mode: the format is asked for in the system prompt"
    assert [m["role"] for m in first.body["messages"]] == ["user", "assistant", "user"]
    assert first.body["max_tokens"] == 300 and first.body["stop_sequences"] == ["###"]
    assert "temperature" not in first.body, "the Messages API takes no sampling parameters any more"
    assert second.body["system"] == "Be brief."
    assert [m["role"] for m in second.body["messages"]] == ["user"]
    assert second.body["max_tokens"] > 0
    # anthropic 2.x sends the key as a bearer token; older SDKs used x-api-key
    assert "sim-key" in (first.headers.get("x-api-key") or first.headers.get("authorization", ""))


def test_gemini__roles_mapped_to_user_and_model_and_system_instruction_set(simulator, endpoint_for):
    endpoint = endpoint_for("gemini")
    complete(endpoint, CONVERSATION, retry_policy=NO_RETRIES)

    (sent,) = simulator.recorded_requests(endpoint.model)
    assert [c["role"] for c in sent.body["contents"]] == ["user", "model", "user"]
    assert sent.body["systemInstruction"]["parts"][0]["text"] == "You are a billing assistant."
    config = sent.body["generationConfig"]
    assert config["maxOutputTokens"] == 300 and config["stopSequences"] == ["###"]
    assert config["responseMimeType"] == "application/json"
    assert sent.headers["x-goog-api-key"] == "sim-key"


def test_endpoint_default_params__used_when_the_request_leaves_them_out(simulator, endpoint_for):
    endpoint = endpoint_for("openai", default_params={"temperature": 0.7, "max_tokens": 64})
    complete(endpoint, ask(), retry_policy=NO_RETRIES)

    (sent,) = simulator.recorded_requests(endpoint.model)
    assert sent.body["temperature"] == 0.7 and sent.body["max_completion_tokens"] == 64


@pytest.mark.parametrize("provider", PROVIDERS)
def test_api_key__read_from_the_named_variable_at_call_time(provider, simulator, endpoint_for, monkeypatch):
    endpoint = endpoint_for(provider)
    client = ModelClient(endpoint, retry_policy=NO_RETRIES)
    client.complete(ask())
    monkeypatch.setenv(endpoint.api_key_env, "rotated-key")

    client.complete(ask())

    first, second = simulator.recorded_requests(endpoint.model)
    assert "sim-key" in json.dumps(first.headers) and "rotated-key" in json.dumps(second.headers)


def test_api_key_variable_unset__auth_error_and_nothing_sent(simulator, endpoint_for, monkeypatch):
    endpoint = endpoint_for("anthropic")
    monkeypatch.delenv(endpoint.api_key_env)

    with pytest.raises(ProviderError) as raised:
        complete(endpoint, ask(), retry_policy=NO_RETRIES)

    assert raised.value.kind == ErrorKind.AUTH
    assert endpoint.api_key_env in raised.value.message
    assert simulator.recorded_requests(endpoint.model) == []


# --- cost -----------------------------------------------------------------------------------------------


def test_cost__from_the_endpoint_prices_and_the_reported_usage(simulator, endpoint_for):
    endpoint = endpoint_for("anthropic", input_price_per_mtok=3.0, output_price_per_mtok=15.0)
    simulator.set_script(endpoint.model, ModelScript(usage=UsageSpec(input_tokens=2000, output_tokens=500)))

    completion = complete(endpoint, ask(), retry_policy=NO_RETRIES)

    assert completion.cost_usd == pytest.approx(0.006 + 0.0075)
    assert completion.cost_usd == cost_usd(endpoint, input_tokens=2000, output_tokens=500)


def test_complete_with_a_policy__that_policy_used_even_though_the_client_is_shared(simulator, endpoint_for,
                                                                                   policy, recorded_sleep):
    endpoint = endpoint_for("openai")
    complete(endpoint, ask(), retry_policy=NO_RETRIES)  # the shared client now exists
    simulator.queue_outcomes(endpoint.model, ["server_error", "ok"])

    completion = complete(endpoint, ask(), retry_policy=policy)

    assert completion.retries == 1 and recorded_sleep.delays == [pytest.approx(0.05)]
