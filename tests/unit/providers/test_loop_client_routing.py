"""Which calls the worker's loop client and the sidecar make over raw HTTP: OpenAI-format endpoints reached
without a proxy.
Everything else keeps the official SDKs (which honour HTTP(S)_PROXY, as the raw client does not)."""

from __future__ import annotations

import pytest

from cutover.providers import EndpointSpec
from cutover.providers.async_client import (
    OpenAIWireClient,
    ThreadedModelClient,
    make_async_client,
    proxied,
    takes_fast_path,
)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "no_proxy", "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def endpoint(provider: str, base_url: str | None = "http://127.0.0.1:9000/v1") -> EndpointSpec:
    return EndpointSpec(provider=provider, model="m", api_key_env="KEY", base_url=base_url)


@pytest.mark.parametrize(("provider", "fast"), [("openai", True), ("openai_compatible", True),
                                                ("anthropic", False), ("gemini", False)])
def test_no_proxy__openai_format_endpoints_take_the_fast_path_others_their_sdks(provider, fast):
    assert takes_fast_path(endpoint(provider)) is fast


def test_https_proxy__applies_to_https_urls_only():
    assert not proxied("https://api.openai.com/v1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
        assert proxied("https://api.openai.com/v1")
        assert not proxied("http://127.0.0.1:9000/v1")


def test_all_proxy__applies_to_every_scheme():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALL_PROXY", "http://proxy.internal:3128")
        assert proxied("https://api.openai.com/v1") and proxied("http://gateway.internal/v1")


def test_no_proxy__hosts_it_names_are_reached_directly():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
        patch.setenv("NO_PROXY", "localhost,.internal")
        assert not proxied("https://gateway.internal/v1")
        assert proxied("https://api.openai.com/v1")


def test_proxied_endpoint__goes_through_the_official_sdk(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert not takes_fast_path(endpoint("openai", "https://api.openai.com/v1"))
    assert not takes_fast_path(endpoint("openai", None))  # the default base URL, https
    assert takes_fast_path(endpoint("openai", "http://127.0.0.1:9000/v1"))


def test_no_base_url__openai_base_url_from_the_environment_decides(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway.internal/v1")
    assert not takes_fast_path(endpoint("openai", None))
    monkeypatch.setenv("OPENAI_BASE_URL", "https://gateway.internal/v1")
    assert takes_fast_path(endpoint("openai", None))


def test_sidecar_client__proxied_openai_endpoint__official_sdk_in_the_thread_pool(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from cutover.providers.client import ModelClient
    from cutover.providers.http_pool import ConnectionPool
    from cutover.providers.retry import RetryPolicy

    sdk_clients = []

    def sync_client():
        sdk_clients.append(ModelClient(endpoint("openai", "https://api.openai.com/v1")))
        return sdk_clients[-1]

    def client_for(spec: EndpointSpec):
        return make_async_client(spec, retry_policy=RetryPolicy(), http=ConnectionPool(), sync_client=sync_client,
                                 executor=executor)

    with ThreadPoolExecutor(1) as executor:
        direct = client_for(endpoint("openai", "https://api.openai.com/v1"))
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
        proxied_client = client_for(endpoint("openai", "https://api.openai.com/v1"))
    assert isinstance(direct, OpenAIWireClient)
    assert isinstance(proxied_client, ThreadedModelClient) and len(sdk_clients) == 1
