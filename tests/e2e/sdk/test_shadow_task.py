"""The application's `task` travels with the shadow sample, however the SDK is called (complete, stream, acomplete,
or the sidecar's X-Cutover-Task header), so the candidate's prompt adapter can use it in the shadow call."""

import asyncio
import json

import httpx
import pytest

from cutover.providers import ChatRequest, Message
from cutover.sdk import CutoverClient
from cutover.sidecar import Sidecar
from tests.e2e.sdk.conftest import KEY_ENV
from tests.support.http_sink import HttpSink

REQUEST = ChatRequest(messages=(Message("user", "Plan a route for 3 parcels"),))


@pytest.fixture
def mirrored(simulator, tmp_path):
    """An SDK client mirroring every baseline answer to a sink standing in for the control plane."""
    document = {"environment": "prod", "version": 1, "plans": [{
        "key": "bot", "state": "shadowing", "candidate_percent": 0.0, "rollback": False,
        "shadow_sample_rate": 1.0, "salt": "s",
        "baseline": {"provider": "openai", "model": "task-gpt", "base_url": simulator.openai_base_url,
                     "api_key_env": KEY_ENV, "params": {}, "prompt_adapter": None},
        "candidate": {"provider": "anthropic", "model": "task-claude", "base_url": simulator.base_url,
                      "api_key_env": KEY_ENV, "params": {}, "prompt_adapter": "claude-v1"}}]}
    bootstrap = tmp_path / "config.json"
    bootstrap.write_text(json.dumps(document))
    with HttpSink(default_status=202, default_body=b'{"accepted": 1, "duplicate": 0}') as sink:
        client = CutoverClient(sink.url, "k", bootstrap_file=str(bootstrap), flush_interval=0.1,
                               config_options={"backoff_base": 5})

        def shadow_params() -> list[dict]:
            client.close()
            return [r.json()["request"]["params"] for r in sink.requests if r.path == "/api/v1/sdk/shadow"]

        yield client, shadow_params


def test_complete_with_task__shadow_sample_params_carry_it(mirrored):
    client, shadow_params = mirrored
    client.complete("bot", REQUEST, task="reasoning")
    client.complete("bot", REQUEST)
    assert shadow_params() == [{"task": "reasoning"}, {}]


def test_stream_and_acomplete_with_task__shadow_sample_params_carry_it(mirrored):
    client, shadow_params = mirrored
    stream = client.stream("bot", REQUEST, task="math")
    assert "".join(stream)
    asyncio.run(client.acomplete("bot", REQUEST, task="planning"))
    assert [params["task"] for params in shadow_params()] == ["math", "planning"]


def test_sidecar_task_header__shadow_sample_params_carry_it(mirrored):
    client, shadow_params = mirrored
    with Sidecar(client) as sidecar:
        response = httpx.post(f"{sidecar.base_url}/v1/chat/completions", headers={"X-Cutover-Task": "analysis"},
                              json={"model": "bot", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 200
    assert shadow_params() == [{"task": "analysis"}]
