"""Cost from per-million-token prices; the request and endpoint types."""

from __future__ import annotations

import pytest

from cutover.providers.pricing import cost_usd
from cutover.providers.types import ChatRequest, EndpointSpec, Message, Provider


def gpt4() -> EndpointSpec:
    return EndpointSpec.from_dict({
        "name": "gpt-4-prod", "provider": "openai", "model": "gpt-4", "base_url": None,
        "api_key_env": "OPENAI_API_KEY", "input_price_per_mtok": 30.0, "output_price_per_mtok": 60.0,
        "context_window": 128000, "default_params": {"temperature": 0.2},
    })


def test_cost__input_and_output_tokens_at_their_per_million_prices():
    # 420 prompt tokens and 96 completion tokens on GPT-4 list prices
    assert cost_usd(gpt4(), input_tokens=420, output_tokens=96) == pytest.approx(0.0126 + 0.00576)


def test_cost__free_endpoint_costs_nothing():
    free = EndpointSpec(provider="openai_compatible", model="llama", api_key_env="X")
    assert cost_usd(free, input_tokens=10_000, output_tokens=10_000) == 0.0


def test_endpoint__built_from_the_api_shape_and_immutable():
    endpoint = gpt4()
    assert endpoint.provider is Provider.OPENAI
    assert endpoint.default_params["temperature"] == 0.2
    with pytest.raises(TypeError):
        endpoint.default_params["temperature"] = 1.0  # type: ignore[index]
    assert hash(endpoint) == hash(gpt4()) and endpoint == gpt4()


def test_endpoint__built_from_the_sdk_config_document_without_a_key_env():
    endpoint = EndpointSpec.from_dict({"provider": "anthropic", "model": "claude-3-5-sonnet", "base_url": None,
                                       "params": {"max_tokens": 512}, "prompt_adapter": "claude-v1"})
    assert endpoint.api_key_env == "ANTHROPIC_API_KEY"
    assert endpoint.default_params == {"max_tokens": 512}


def test_unknown_provider__refused():
    with pytest.raises(ValueError):
        EndpointSpec(provider="cohere", model="x", api_key_env="X")  # type: ignore[arg-type]


def test_request__system_messages_fold_into_the_system_prompt():
    request = ChatRequest(
        system="You are terse.",
        messages=[Message("system", "Never mention prices."), Message("user", "Hi"), Message("assistant", "Hello")],
    )
    assert request.system_prompt() == "You are terse.\n\nNever mention prices."
    assert [m.role for m in request.turns()] == ["user", "assistant"]
    assert isinstance(request.messages, tuple)
