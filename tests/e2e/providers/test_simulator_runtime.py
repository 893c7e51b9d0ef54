"""The simulator as a running server: scripts changed at runtime, the CLI, concurrency, chat-history migration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cutover.providers import NO_RETRIES, ChatRequest, ErrorKind, Message, ModelClient, ProviderError, complete
from cutover.providers.context_window import fit_to_window, model_summarizer
from cutover.providers.normalize import normalize_output
from cutover.providers.prompt_adapters import apply_prompt_adapter
from cutover.simulator import ModelScript, Scenario, SimulatorServer

ROOT = Path(__file__).resolve().parents[3]


def ask(text: str = "Is my order shipped?") -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), timeout=2)


def test_script_changed_over_the_admin_route__regression_seen_by_the_next_calls(simulator, endpoint_for):
    # Given a healthy candidate
    endpoint = endpoint_for("anthropic")
    client = ModelClient(endpoint, retry_policy=NO_RETRIES)
    assert client.complete(ask()).text

    # When ops inject a regression while the server runs: every call now fails with a server error
    response = httpx.post(f"{simulator.base_url}/_sim/models/{endpoint.model}",
                          json={"errors": {"server_error": 1.0}})
    assert response.status_code == 200 and response.json()["errors"]["server_error"] == 1.0

    # Then the next calls see it
    with pytest.raises(ProviderError) as raised:
        client.complete(ask())
    assert raised.value.kind == ErrorKind.SERVER_ERROR

    # And undoing it over the same route heals the model
    httpx.post(f"{simulator.base_url}/_sim/models/{endpoint.model}", json={"errors": {"server_error": 0.0}})
    assert client.complete(ask()).text


def test_admin_route__unknown_script_field_refused_with_400(simulator):
    response = httpx.post(f"{simulator.base_url}/_sim/models/any", json={"latncy": {"median_ms": 5}})
    assert response.status_code == 400 and "latncy" in response.json()["error"]["message"]


def test_admin_route__outcomes_queued_and_stats_reported(simulator, endpoint_for):
    endpoint = endpoint_for("openai")
    httpx.post(f"{simulator.base_url}/_sim/models/{endpoint.model}/outcomes", json={"outcomes": ["auth"]})
    with pytest.raises(ProviderError):
        complete(endpoint, ask(), retry_policy=NO_RETRIES)
    complete(endpoint, ask(), retry_policy=NO_RETRIES)

    stats = httpx.get(f"{simulator.base_url}/_sim/stats").json()
    assert stats["requests"][endpoint.model] == {"auth": 1, "ok": 1}


def test_slow_models__served_concurrently_not_one_after_another(endpoint_for):
    # 40 calls of 200 ms each add far less than 40 x 200 ms to the same 40 calls answered at once: the server
    # never blocks on a sleep. Measured against the instant run, so the client's own CPU time (40 threads of
    # the official SDK, slow on a busy machine) cancels out.
    def forty_calls(latency_ms: int) -> float:
        scenario = Scenario.from_dict({"default": {"latency": {"median_ms": latency_ms}}})
        with SimulatorServer(scenario) as server:
            client = ModelClient(endpoint_for("openai", base_url=server.openai_base_url), retry_policy=NO_RETRIES)
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=40) as pool:
                completions = list(pool.map(lambda i: client.complete(ask(f"question {i}"), stream=i % 2 == 0),
                                            range(40)))
            elapsed = time.perf_counter() - started
        assert all(c.text for c in completions)
        return elapsed

    instant, slow = forty_calls(0), forty_calls(200)
    assert slow - instant < 1.0, f"200 ms models added {slow - instant:.2f} s to 40 concurrent calls (8 s in a row)"


def test_scenario_with_api_key__requests_with_another_key_are_refused_as_auth(endpoint_for, monkeypatch):
    with SimulatorServer(Scenario(api_key="the-right-key")) as guarded:
        endpoint = endpoint_for("gemini", base_url=guarded.base_url)
        with pytest.raises(ProviderError) as raised:
            complete(endpoint, ask(), retry_policy=NO_RETRIES)
        assert raised.value.kind == ErrorKind.AUTH

        monkeypatch.setenv(endpoint.api_key_env, "the-right-key")
        assert complete(endpoint, ask(), retry_policy=NO_RETRIES).text


def test_cli__serves_the_scenario_file_on_the_asked_port(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"models": {"gpt-4": {"answer": {"kind": "template", "template": "pong"}}}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "simulator", "--port", "0", "--scenario", str(scenario)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        announced = json.loads(process.stdout.readline())
        response = httpx.post(f"{announced['simulator']}/v1/chat/completions",
                              json={"model": "gpt-4", "messages": [{"role": "user", "content": "ping"}]})
        assert response.json()["choices"][0]["message"]["content"] == "pong"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli__unreadable_scenario_exits_with_an_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = subprocess.run([sys.executable, "-m", "cutover.cli", "simulator", "--port", "0", "--scenario", str(bad)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30)
    assert result.returncode == 2 and "cannot load scenario" in result.stderr


def test_chat_history_migration__dropped_turns_summarised_by_a_simulated_model(simulator, endpoint_for):
    # Given a long conversation moving to a model with a small window, and a cheap model to summarise
    summarizer_endpoint = endpoint_for("openai", model="summary-model")
    simulator.set_script("summary-model", ModelScript.from_dict(
        {"answer": {"kind": "template", "template": "Earlier: router drops every evening."}}))
    turns = []
    for i in range(20):
        turns += [Message("user", f"Message {i}: my router drops the connection every evening. " * 3),
                  Message("assistant", f"Reply {i}: please check the firmware and the WAN light. " * 3)]
    conversation = ChatRequest(system="You are Acme's support bot.",
                               messages=(*turns, Message("user", "Firmware 2.1.4. Now what?")), max_tokens=300)

    fitted = fit_to_window(conversation, context_window=1_500, summarize=model_summarizer(summarizer_endpoint))

    # Then the summary written by that model replaces the dropped turns and the target model accepts the call
    assert fitted.summary == "Earlier: router drops every evening."
    assert "Earlier: router drops every evening." in fitted.request.system
    (summary_call,) = simulator.recorded_requests("summary-model")
    assert "Message 0: my router drops" in json.dumps(summary_call.body)
    target = endpoint_for("gemini")
    simulator.set_script(target.model, ModelScript(context_window=1_500))
    assert complete(target, fitted.request, retry_policy=NO_RETRIES).text
    with pytest.raises(ProviderError):
        complete(target, conversation, retry_policy=NO_RETRIES)


def test_prompt_adapter_and_normaliser__claude_answer_in_tags_compares_with_gpt_raw_json(simulator, endpoint_for):
    # The baseline answers raw JSON; the candidate, adapted with claude-v1, wraps the same JSON in tags
    simulator.set_script("gpt-baseline", ModelScript.from_dict({"answer": {"kind": "json", "json": {"total": 8.5}}}))
    simulator.set_script("claude-candidate", ModelScript.from_dict(
        {"answer": {"kind": "json", "json": {"total": 8.5}, "wrap": "answer_tag"}}))
    request = ChatRequest(messages=(Message("user", "Shipping for 3.2 kg at $4 + $1.50/started kg?"),),
                          response_format="json")

    baseline = complete(endpoint_for("openai", model="gpt-baseline"), request, retry_policy=NO_RETRIES)
    adapted = apply_prompt_adapter("claude-v1", request, task="reasoning")
    candidate = complete(endpoint_for("anthropic", model="claude-candidate"), adapted, retry_policy=NO_RETRIES)

    sent = simulator.recorded_requests("claude-candidate")[0].body
    assert "<answer>" in sent["messages"][-1]["content"]
    assert normalize_output(baseline.text, "json").value == normalize_output(candidate.text, "json").value


def test_malformed_requests__answered_with_an_error_and_the_server_keeps_serving(simulator):
    import socket

    with socket.create_connection(("127.0.0.1", simulator.port), timeout=5) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    odd_body = httpx.post(f"{simulator.openai_base_url}/chat/completions", json=["not", "an", "object"])
    assert odd_body.status_code in (400, 500)
    assert httpx.get(f"{simulator.base_url}/_sim/health").json() == {"ok": True}
