"""Done-when of issue 5, against the real control plane (live_server) and the provider simulator."""

import asyncio
import json
import time

import httpx
import openai
import pytest

from cutover.providers import ChatRequest, EndpointSpec, Message, ProviderError
from cutover.routing import Arm, bucket
from cutover.sdk import ConfigState, CutoverClient, PlanNotConfigured
from cutover.sidecar import Sidecar
from migrations_app.models import RequestEvent
from migrations_app.services.plans import plan_act
from tests.e2e.sdk.conftest import KEY_ENV, sidecar_arm, start_sidecar_process, wait_until
from tests.support import processes
from tests.support.http_sink import HttpSink

pytestmark = pytest.mark.django_db(transaction=True)

HI = ChatRequest(messages=(Message("user", "Where is my refund?"),))


def expected_arm(plan, user: str) -> str:
    return "candidate" if bucket(plan.salt, user) < 0.5 else "baseline"


def sdk_client(plan, **options) -> CutoverClient:
    client = CutoverClient(plan.url, plan.sdk_key, config_wait=20, flush_interval=0.2, **options)
    assert client.config.wait_for_version(lambda d: plan.key in d.plans, 5)
    return client


def test_sidecar__official_openai_client_plain_and_streaming__right_arm_at_the_split_events_once(live_plan):
    client = sdk_client(live_plan)
    sidecar = Sidecar(client).start()
    try:
        app = openai.OpenAI(base_url=sidecar.openai_base_url, api_key="unused", max_retries=0)
        arms = {"baseline": 0, "candidate": 0}
        for i in range(2000):
            user = f"user-{i}"
            raw = app.chat.completions.with_raw_response.create(
                model=live_plan.key, user=user, messages=[{"role": "user", "content": f"question {i}"}])
            completion = raw.parse()
            arm = raw.headers["X-Cutover-Arm"]
            assert arm == expected_arm(live_plan, user)
            model = live_plan.candidate_model if arm == "candidate" else live_plan.baseline_model
            assert completion.model == model and completion.choices[0].message.content
            arms[arm] += 1
        sigma = (0.25 / 2000) ** 0.5
        assert abs(arms["candidate"] / 2000 - 0.5) < 4 * sigma, arms

        streamed = {"baseline": 0, "candidate": 0}
        for i in range(100):
            user = f"stream-user-{i}"
            with app.chat.completions.with_streaming_response.create(
                    model=live_plan.key, user=user, stream=True, stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": "tell me more"}]) as response:
                arm = response.headers["X-Cutover-Arm"]
                chunks = list(response.parse())
            assert arm == expected_arm(live_plan, user)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text and chunks[-1].usage.completion_tokens > 0
            assert chunks[0].model == (live_plan.candidate_model if arm == "candidate" else live_plan.baseline_model)
            streamed[arm] += 1
        assert min(streamed.values()) > 20

        models = app.models.list()
        assert [m.id for m in models.data] == [live_plan.key]
    finally:
        sidecar.stop()
        client.close()
    assert client.reporter.stats.dropped == 0
    events = RequestEvent.objects.filter(plan__key=live_plan.key)
    assert events.count() == 2100 and events.values("id").distinct().count() == 2100
    assert events.filter(arm="candidate").count() == arms["candidate"] + streamed["candidate"]
    assert events.exclude(ttft_ms=None).count() == 100


def test_sidecar_errors__openai_error_shape(live_plan):
    client = sdk_client(live_plan)
    with Sidecar(client) as sidecar:
        app = openai.OpenAI(base_url=sidecar.openai_base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.NotFoundError) as unknown:
            app.chat.completions.create(model="no-such-plan", messages=[{"role": "user", "content": "x"}])
        assert unknown.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            app.chat.completions.create(model=live_plan.key, messages=[{"role": "tool", "content": "x"}])
        assert bad.value.body["param"] == "messages[0].role"
        response = httpx.post(sidecar.openai_base_url + "/chat/completions", content=b"{nope")
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    client.close()


def test_rollback_via_the_api__sidecar_process_and_sdk_obey_within_one_second(live_plan, tmp_path):
    candidates = [f"u{i}" for i in range(200) if expected_arm(live_plan, f"u{i}") == "candidate"][:5]
    process, base_url = start_sidecar_process(live_plan, tmp_path)
    client = sdk_client(live_plan)
    try:
        wait_until(lambda: sidecar_arm(base_url, live_plan.key, candidates[0]) == "candidate", 5)
        assert client.route(live_plan.key, routing_key=candidates[0]).decision.arm is Arm.CANDIDATE
        time.sleep(0.3)  # both are now parked in a long-poll

        plan_act(actor="test", plan_key=live_plan.key, action="rollback", reason="e2e")
        try:
            sdk_took = wait_until(lambda: client.route(live_plan.key, routing_key=candidates[0]).decision.arm
                                  is Arm.BASELINE, 1.0, interval=0.005)
        except AssertionError as late:
            raise AssertionError(f"SDK too late: {client.config.status()} polls={client.config.polls}") from late
        version_took = wait_until(lambda: httpx.get(f"{base_url}/healthz").json()["config"]["version"]
                                  == client.config.version, 1.0, interval=0.005)
        sidecar_took = wait_until(lambda: all(sidecar_arm(base_url, live_plan.key, u) == "baseline"
                                              for u in candidates), 1.0, interval=0.005)
        assert sdk_took < 1.0 and version_took < 1.0 and sidecar_took < 1.0
        assert client.route(live_plan.key, routing_key=candidates[1], conversation_id="c1").decision.arm \
            is Arm.BASELINE
    finally:
        processes.stop(process)
        client.close()


def test_control_plane_down_or_garbage__routing_stays_on_the_last_good_config(live_plan):
    document = httpx.get(f"{live_plan.url}/api/v1/sdk/config",
                         headers={"Authorization": f"Bearer {live_plan.sdk_key}"}).content
    users = [f"user-{i}" for i in range(200)]
    with HttpSink() as sink:
        close = {"Connection": "close"}  # so that once the sink stops, the client finds nothing listening
        sink.respond_with(200, headers={"ETag": '"7"', **close}, body=document)
        sink.respond_with(*[200] * 1000, headers=close, body=b"<html>502 bad gateway</html>")
        client = CutoverClient(sink.url, "k", report=False, mirror=False, config_wait=1,
                               config_options={"backoff_base": 0.01, "backoff_max": 0.02})
        try:
            assert client.config.wait_for_version(lambda d: True, 3)
            before = [client.route(live_plan.key, routing_key=u).decision.arm for u in users]
            wait_until(lambda: len(sink.requests) >= 6, 3)
            assert client.config.state is ConfigState.INTERRUPTED and "malformed" in client.config.last_error
            assert [client.route(live_plan.key, routing_key=u).decision.arm for u in users] == before
            sink.stop()  # now the control plane is down altogether
            wait_until(lambda: "unreachable" in (client.config.last_error or ""), 3)
            assert [client.route(live_plan.key, routing_key=u).decision.arm for u in users] == before
            assert Arm.CANDIDATE in before and Arm.BASELINE in before
        finally:
            client.close()


def test_candidate_failures__fall_back_to_the_baseline__reported_fell_back(live_plan, simulator):
    simulator.update_script(live_plan.candidate_model, {"errors": {"server_error": 1.0}})
    client = sdk_client(live_plan)
    users = [f"f{i}" for i in range(40)]
    try:
        with Sidecar(client) as sidecar:
            for user in users[:20]:
                response = httpx.post(f"{sidecar.base_url}/v1/chat/completions",
                                      json={"model": live_plan.key, "user": user,
                                            "messages": [{"role": "user", "content": "hi"}]})
                assert response.status_code == 200 and response.headers["X-Cutover-Arm"] == "baseline"
                assert response.json()["model"] == live_plan.baseline_model
            for user in users[20:]:
                result = client.complete(live_plan.key, HI, routing_key=user)
                assert result.arm is Arm.BASELINE and result.text
                assert result.fell_back == (expected_arm(live_plan, user) == "candidate")
    finally:
        client.close()
    fell_back = RequestEvent.objects.filter(plan__key=live_plan.key, fell_back=True)
    expected = sum(expected_arm(live_plan, u) == "candidate" for u in users)
    assert expected > 5 and fell_back.count() == expected
    assert set(fell_back.values_list("arm", "outcome", "error_type").distinct()) == {
        ("candidate", "error", "server_error")}
    assert RequestEvent.objects.filter(plan__key=live_plan.key).count() == len(users)


def test_baseline_failure__its_provider_error_surfaces__sidecar_answers_openai_shape(live_plan, simulator):
    simulator.update_script(live_plan.baseline_model, {"errors": {"bad_request": 1.0}})
    client = sdk_client(live_plan)
    baseline_user = next(f"b{i}" for i in range(100) if expected_arm(live_plan, f"b{i}") == "baseline")
    try:
        with pytest.raises(ProviderError) as raised:
            client.complete(live_plan.key, HI, routing_key=baseline_user)
        assert raised.value.kind == "bad_request"
        with Sidecar(client) as sidecar:
            app = openai.OpenAI(base_url=sidecar.openai_base_url, api_key="unused", max_retries=0)
            with pytest.raises(openai.BadRequestError) as bad:
                app.chat.completions.create(model=live_plan.key, user=baseline_user,
                                            messages=[{"role": "user", "content": "x"}])
            assert bad.value.code == "bad_request"
    finally:
        client.close()
    assert RequestEvent.objects.filter(plan__key=live_plan.key, outcome="error", arm="baseline").count() == 2


def test_sdk_async_complete__routes_and_reports(live_plan):
    client = sdk_client(live_plan)

    async def many():
        return await asyncio.gather(*(client.acomplete(live_plan.key, HI, routing_key=f"a{i}", segment="billing")
                                      for i in range(30)))

    try:
        results = asyncio.run(many())
    finally:
        client.close()
    assert [r.chosen_arm.value for r in results] == [expected_arm(live_plan, f"a{i}") for i in range(30)]
    assert RequestEvent.objects.filter(plan__key=live_plan.key, segment="billing").count() == 30


def test_no_config__baseline_given__called_and_unknown_plan_refused(simulator):
    baseline = EndpointSpec(provider="openai", model="fallback-gpt", api_key_env=KEY_ENV,
                            base_url=simulator.openai_base_url)
    client = CutoverClient("http://127.0.0.1:9", "k", baselines={"bot": baseline}, report=False,
                           config_options={"backoff_base": 0.05})
    try:
        result = client.complete("bot", HI, routing_key="u1")
        assert result.arm is Arm.BASELINE and result.model == "fallback-gpt" and result.reason == "no_config"
        with pytest.raises(PlanNotConfigured):
            client.complete("other", HI)
    finally:
        client.close()


def test_shadow_mirroring__sampled_baseline_answers_only_safe_requests(simulator, tmp_path):
    document = {"environment": "prod", "version": 3, "plans": [{
        "key": "bot", "state": "rolling_out", "candidate_percent": 0.0, "rollback": False,
        "shadow_sample_rate": 1.0, "salt": "s",
        "baseline": {"provider": "openai", "model": "shadow-gpt", "base_url": simulator.openai_base_url,
                     "api_key_env": KEY_ENV, "params": {}, "prompt_adapter": None},
        "candidate": {"provider": "anthropic", "model": "shadow-claude", "base_url": simulator.base_url,
                      "api_key_env": KEY_ENV, "params": {}, "prompt_adapter": "claude-v1"}}]}
    bootstrap = tmp_path / "config.json"
    bootstrap.write_text(json.dumps(document))
    with HttpSink(default_status=202, default_body=b'{"accepted": 1, "duplicate": 0}') as sink:
        client = CutoverClient(sink.url, "k", bootstrap_file=str(bootstrap), flush_interval=0.1,
                               config_options={"backoff_base": 5})
        request = ChatRequest(messages=(Message("user", "Refund status?"),), system="Be brief.", max_tokens=50)
        started = time.perf_counter()
        result = client.complete("bot", request, routing_key="u1", segment="billing")
        assert time.perf_counter() - started < 0.5
        from cutover.providers import Tool
        client.complete("bot", ChatRequest(messages=HI.messages, tools=(Tool("refund"),)), routing_key="u2")
        client.complete("bot", HI, routing_key="u3", safe_to_repeat=False)
        client.close()
        shadows = [r.json() for r in sink.requests if r.path == "/api/v1/sdk/shadow"]
        events = [e for r in sink.requests if r.path == "/api/v1/sdk/events" for e in r.json()["events"]]
    assert len(shadows) == 1 and len(events) == 3
    [shadow] = shadows
    assert shadow["plan"] == "bot" and shadow["request_id"] == result.request_id == events[0]["id"]
    assert shadow["request"] == {"messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Refund status?"}],
                                 "params": {"max_tokens": 50}}
    assert shadow["baseline"]["text"] == result.completion.text and shadow["baseline"]["model"] == "shadow-gpt"
    assert set(shadow["baseline"]) == {"text", "latency_ms", "input_tokens", "output_tokens", "model"}
    assert shadow["segment"] == "billing" and shadow["ts"].endswith("Z")
