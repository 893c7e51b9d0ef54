"""The control plane stopped (its web server process gone, its port closed): the SDK and a sidecar process keep
routing on the last good config, a rollback set before the stop stays obeyed, and once the control plane is
back they pick up changes made meanwhile.

(tests/e2e/sdk/test_sidecar_and_sdk.py::test_control_plane_down_or_garbage__routing_stays_on_the_last_good_config
covers the SDK against a fake control plane that answers garbage and then vanishes; this one stops the real one.)
"""

from types import SimpleNamespace

import pytest

from cutover.routing import Arm
from cutover.sdk import ConfigState, CutoverClient
from cutover.simulator import Scenario, SimulatorServer
from migrations_app.services.plans import plan_act
from tests.e2e.sdk.conftest import KEY_ENV, make_live_plan, sidecar_arm, start_sidecar_process
from tests.support.processes import stop
from tests.support.servers import ControlPlane, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


@pytest.fixture
def simulator(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sim-key")
    scenario = Scenario.from_dict({"seed": 5, "default": {"latency": {"median_ms": 0}}})
    with SimulatorServer(scenario) as server:
        yield server


def test_control_plane_stopped__sdk_and_sidecar_route_on_the_last_good_config__rollback_sticky(simulator, tmp_path):
    web = ControlPlane(tmp_path / "web.log").start()
    sidecar = client = None
    try:
        server = SimpleNamespace(url=web.url)
        rolled = make_live_plan(server, simulator, name="stop-rolled")
        steady = make_live_plan(server, simulator, name="stop-steady")
        sidecar, sidecar_url = start_sidecar_process(rolled, tmp_path)
        client = CutoverClient(web.url, rolled.sdk_key, config_wait=20, flush_interval=0.2,
                               config_options={"backoff_base": 0.05, "backoff_max": 0.2})
        wait_until(lambda: {rolled.key, steady.key} <= set(client.config.document.plans if client.config.document
                                                         else ()), 10, "the SDK's first config")
        users = [f"user-{i}" for i in range(60)]

        def arms(plan):
            return [client.route(plan.key, routing_key=u).decision.arm for u in users]

        candidates = [u for u, arm in zip(users, arms(rolled), strict=True) if arm is Arm.CANDIDATE][:3]
        assert candidates and Arm.BASELINE in arms(steady) and Arm.CANDIDATE in arms(steady)
        wait_until(lambda: sidecar_arm(sidecar_url, rolled.key, candidates[0]) == "candidate", 10, "sidecar config")

        plan_act(actor="user:ops", plan_key=rolled.key, action="rollback", reason="fault test")
        wait_until(lambda: set(arms(rolled)) == {Arm.BASELINE}, 10, "the SDK obeys the rollback")
        wait_until(lambda: all(sidecar_arm(sidecar_url, rolled.key, u) == "baseline" for u in candidates), 10,
                   "the sidecar obeys the rollback")
        steady_split = arms(steady)

        web.stop()
        wait_until(lambda: client.config.state is ConfigState.INTERRUPTED, 10, "the SDK notices")
        # Meanwhile an operator retries the plan (in the database): nobody can learn of it yet.
        plan_act(actor="user:ops", plan_key=rolled.key, action="retry", reason="while the control plane is down")
        for _ in range(3):
            assert set(arms(rolled)) == {Arm.BASELINE}  # sticky: the last good config said rollback
            assert arms(steady) == steady_split
            assert [sidecar_arm(sidecar_url, rolled.key, u) for u in candidates] == ["baseline"] * len(candidates)
            assert sidecar_arm(sidecar_url, steady.key, users[0]) == steady_split[0].value

        web.start()  # the same port
        wait_until(lambda: client.route(rolled.key, routing_key=candidates[0]).decision.arm is Arm.CANDIDATE, 20,
                   "the SDK picks up the retry")
        wait_until(lambda: sidecar_arm(sidecar_url, rolled.key, candidates[0]) == "candidate", 40,
                   "the sidecar picks up the retry")
        assert client.config.state is ConfigState.VALID and arms(steady) == steady_split
    finally:
        if sidecar is not None:
            stop(sidecar)
        if client is not None:
            client.close(timeout=2)
        web.stop()
