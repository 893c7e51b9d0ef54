"""A simulator on loopback shared by the provider tests, and endpoints that point the official SDKs at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cutover.providers import EndpointSpec, RetryPolicy
from cutover.simulator import Scenario, SimulatorServer

KEY_ENV = "CUTOVER_TEST_SIM_KEY"
PROVIDERS = ("openai", "anthropic", "gemini")

# Zero latency keeps the suite fast; a timeout holds the answer well past the clients' 0.2 s timeout.
FAST_SCENARIO = {
    "seed": 11,
    "default": {
        "latency": {"median_ms": 0},
        "errors": {"retry_after_s": 0.05, "timeout_hold_s": 1.5},
    },
}


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(Scenario.from_dict(FAST_SCENARIO)) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_simulator(simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    simulator.reset()
    monkeypatch.setenv(KEY_ENV, "sim-key")


@pytest.fixture
def endpoint_for(simulator: SimulatorServer, request: pytest.FixtureRequest) -> Callable[..., EndpointSpec]:
    """An endpoint on the simulator; the model name is unique per test so scripts never leak between tests."""

    def build(provider: str, *, model: str | None = None, **overrides: object) -> EndpointSpec:
        base_url = simulator.openai_base_url if provider in ("openai", "openai_compatible") else simulator.base_url
        fields: dict[str, object] = {
            "provider": provider,
            "model": model or f"{provider}-{request.node.name}",
            "api_key_env": KEY_ENV,
            "base_url": base_url,
            "input_price_per_mtok": 3.0,
            "output_price_per_mtok": 15.0,
            **overrides,
        }
        return EndpointSpec(**fields)  # type: ignore[arg-type]

    return build


class RecordingSleep:
    """Stands in for time.sleep in the retry policy: records the delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def recorded_sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def policy(recorded_sleep: RecordingSleep) -> RetryPolicy:
    """Three retries, 0.1 s base, jitter pinned at half the ceiling so delays are exact."""
    return RetryPolicy(max_retries=3, base_delay=0.1, max_delay=1.0, sleep=recorded_sleep, random=lambda: 0.5)
