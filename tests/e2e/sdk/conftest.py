"""The SDK and sidecar against the real control plane (live_server) and the provider simulator."""

import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cutover.simulator import Scenario, SimulatorServer
from migrations_app.services.plans import StepSpec, plan_act, plan_create
from tests import factories

KEY_ENV = "CUTOVER_TEST_SIM_KEY"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def simulator():
    scenario = Scenario.from_dict({"seed": 5, "default": {"latency": {"median_ms": 0},
                                                          "answer": {"kind": "deterministic", "words": 8}}})
    with SimulatorServer(scenario) as server:
        yield server


@pytest.fixture(autouse=True)
def _sim_key(simulator, monkeypatch):
    simulator.reset()
    monkeypatch.setenv(KEY_ENV, "sim-key")


@dataclass
class LivePlan:
    url: str
    sdk_key: str
    key: str
    salt: str
    baseline_model: str
    candidate_model: str


def make_live_plan(live_server, simulator, *, percent=50.0, shadow_sample_rate=0.0, name="sdk") -> LivePlan:
    baseline = factories.make_endpoint(f"{name}-baseline", provider="openai", model=f"{name}-gpt",
                                       base_url=simulator.openai_base_url, api_key_env=KEY_ENV)
    candidate = factories.make_endpoint(f"{name}-candidate", provider="anthropic", model=f"{name}-claude",
                                        base_url=simulator.base_url, api_key_env=KEY_ENV)
    plan = plan_create(actor="test", key=f"{name}-bot", environment=factories.make_environment("prod"),
                                 baseline=baseline, candidate=candidate, steps=[StepSpec(percent=percent)],
                                 shadow_sample_rate=shadow_sample_rate)
    for action in ("start", "advance", "advance"):  # evaluating → shadowing → rolling_out at the first step
        plan_act(actor="test", plan_key=plan.key, action=action)
    plan.refresh_from_db()
    return LivePlan(url=live_server.url, sdk_key=factories.make_sdk_key("prod"), key=plan.key, salt=plan.salt,
                    baseline_model=baseline.model, candidate_model=candidate.model)


_plan_numbers = itertools.count(1)


@pytest.fixture
def live_plan(live_server, simulator):
    # Model names unique per test: simulator scripts changed by one test never leak into the next.
    return make_live_plan(live_server, simulator, name=f"sdk{next(_plan_numbers)}")


def start_sidecar_process(plan: LivePlan, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`python -m cutover.cli sidecar` in its own process; returns it and its base URL."""
    env = os.environ | {KEY_ENV: "sim-key", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "sidecar", "--control-plane", plan.url, "--sdk-key", plan.sdk_key,
         "--port", "0", "--config-wait", "20", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=(tmp_path / "sidecar.log").open("w"), text=True,
        start_new_session=True,
    )
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise AssertionError((tmp_path / "sidecar.log").read_text()[-3000:])
    return process, json.loads(line)["sidecar"]


def wait_until(predicate, timeout: float, interval: float = 0.01) -> float:
    """Seconds it took for predicate() to hold; AssertionError after timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


def sidecar_arm(base_url: str, plan: str, user: str) -> str:
    response = httpx.post(f"{base_url}/v1/chat/completions", timeout=10,
                          json={"model": plan, "user": user, "messages": [{"role": "user", "content": "hi"}]})
    return response.headers["X-Cutover-Arm"]
