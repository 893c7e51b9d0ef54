"""The sidecar's raw-HTTP path for OpenAI-format arms: retries, fallback, events and streaming, end to end
(simulator as the model, a sink as the control plane, a bootstrap document as the config)."""

import json
import time

import httpx
import openai
import pytest

from cutover.sdk import CutoverClient
from cutover.sidecar import Sidecar
from tests.e2e.sdk.conftest import KEY_ENV
from tests.support.http_sink import HttpSink


def _arm(simulator, model: str) -> dict:
    return {"provider": "openai", "model": model, "base_url": simulator.openai_base_url, "api_key_env": KEY_ENV,
            "params": {}, "prompt_adapter": None}


@pytest.fixture
def fast_path(simulator, tmp_path, request):
    """A sidecar on a one-plan bootstrap document whose both arms are OpenAI-format models on the simulator.
    Yields a function (candidate_percent, shadow_sample_rate) → (sidecar, models); the sink keeps what the
    sidecar reported."""
    name = request.node.name.replace("[", "-").replace("]", "")
    models = {"baseline": f"{name}-base", "candidate": f"{name}-cand"}
    started: list = []

    def start(candidate_percent: float, shadow_sample_rate: float = 0.0):
        document = {"environment": "prod", "version": 1, "plans": [{
            "key": "bot", "state": "rolling_out", "candidate_percent": candidate_percent, "rollback": False,
            "shadow_sample_rate": shadow_sample_rate, "salt": "s",
            "baseline": _arm(simulator, models["baseline"]), "candidate": _arm(simulator, models["candidate"])}]}
        bootstrap = tmp_path / "config.json"
        bootstrap.write_text(json.dumps(document))
        client = CutoverClient(sink.url, "k", bootstrap_file=str(bootstrap), flush_interval=0.1,
                               config_options={"backoff_base": 5})
        sidecar = Sidecar(client).start()
        started.append((sidecar, client))
        return sidecar, models

    with HttpSink(default_status=202, default_body=b'{"accepted": 1, "duplicate": 0}') as sink:
        start.sink = sink
        yield start
        for sidecar, client in started:
            sidecar.stop()
            client.close()


def _events(sink) -> list[dict]:
    return [e for r in sink.requests if r.path == "/api/v1/sdk/events" for e in r.json()["events"]]


def test_candidate_rate_limited_with_retry_after__retried_once_then_falls_back(fast_path, simulator):
    sidecar, models = fast_path(candidate_percent=100)
    simulator.update_script(models["candidate"], {"errors": {"retry_after_s": 0.2}})
    simulator.queue_outcomes(models["candidate"], ["rate_limited", "rate_limited"])

    started = time.perf_counter()
    response = httpx.post(f"{sidecar.openai_base_url}/chat/completions", timeout=10,
                          json={"model": "bot", "user": "u1", "messages": [{"role": "user", "content": "hi"}]})
    took = time.perf_counter() - started

    assert response.status_code == 200
    assert response.headers["X-Cutover-Arm"] == "baseline" and response.headers["X-Cutover-Fell-Back"] == "true"
    assert response.json()["model"] == models["baseline"] and response.json()["choices"][0]["message"]["content"]
    # The SDK's request-path policy: one retry, after exactly the Retry-After the simulator sent.
    assert simulator.stats()[models["candidate"]] == {"rate_limited": 2}
    assert simulator.stats()[models["baseline"]] == {"ok": 1}
    assert took >= 0.2
    sidecar.client.close()
    [event] = _events(fast_path.sink)
    assert event["id"] == response.headers["X-Cutover-Request-Id"]
    assert (event["arm"], event["outcome"], event["error_type"], event["retries"], event["fell_back"]) == (
        "candidate", "error", "rate_limited", 1, True)
    assert event["latency_ms"] >= 200


def test_baseline_rate_limited__openai_429_with_retry_after__reported_once(fast_path, simulator):
    sidecar, models = fast_path(candidate_percent=0)
    simulator.update_script(models["baseline"], {"errors": {"retry_after_s": 0.05}})
    simulator.queue_outcomes(models["baseline"], ["rate_limited", "rate_limited"])
    app = openai.OpenAI(base_url=sidecar.openai_base_url, api_key="unused", max_retries=0)

    with pytest.raises(openai.RateLimitError) as limited:
        app.chat.completions.create(model="bot", user="u1", messages=[{"role": "user", "content": "hi"}])

    assert limited.value.code == "rate_limited" and limited.value.response.headers["Retry-After"] == "0.05"
    sidecar.client.close()
    [event] = _events(fast_path.sink)
    assert (event["arm"], event["outcome"], event["error_type"], event["retries"], event["fell_back"]) == (
        "baseline", "error", "rate_limited", 1, False)


def test_streamed_through_the_fast_path__ttft_and_usage_reported_and_shadow_mirrored(fast_path, simulator):
    sidecar, models = fast_path(candidate_percent=0, shadow_sample_rate=1.0)
    app = openai.OpenAI(base_url=sidecar.openai_base_url, api_key="unused", max_retries=0)

    with app.chat.completions.with_streaming_response.create(
            model="bot", user="u1", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "tell me more"}]) as response:
        arm, request_id = response.headers["X-Cutover-Arm"], response.headers["X-Cutover-Request-Id"]
        chunks = list(response.parse())

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert arm == "baseline" and text and chunks[0].model == models["baseline"]
    assert chunks[-1].usage.completion_tokens > 0
    sidecar.client.close()
    [event] = _events(fast_path.sink)
    assert event["id"] == request_id and event["outcome"] == "ok" and event["arm"] == "baseline"
    assert event["ttft_ms"] is not None and 0 < event["ttft_ms"] <= event["latency_ms"]
    assert (event["input_tokens"], event["output_tokens"]) == (chunks[-1].usage.prompt_tokens,
                                                              chunks[-1].usage.completion_tokens)
    [shadow] = [r.json() for r in fast_path.sink.requests if r.path == "/api/v1/sdk/shadow"]
    assert shadow["request_id"] == request_id and shadow["baseline"]["text"] == text
    assert shadow["baseline"]["model"] == models["baseline"]


def test_streamed_candidate_failing_before_its_first_text__falls_back_to_the_baseline(fast_path, simulator):
    sidecar, models = fast_path(candidate_percent=100)
    simulator.queue_outcomes(models["candidate"], ["server_error", "server_error"])
    app = openai.OpenAI(base_url=sidecar.openai_base_url, api_key="unused", max_retries=0)

    with app.chat.completions.with_streaming_response.create(
            model="bot", user="u1", stream=True, messages=[{"role": "user", "content": "hi"}]) as response:
        headers = dict(response.headers)
        chunks = list(response.parse())

    assert headers["x-cutover-arm"] == "baseline" and headers["x-cutover-fell-back"] == "true"
    assert chunks[0].model == models["baseline"] and "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices)
    sidecar.client.close()
    [event] = _events(fast_path.sink)
    assert (event["arm"], event["error_type"], event["fell_back"]) == ("candidate", "server_error", True)
