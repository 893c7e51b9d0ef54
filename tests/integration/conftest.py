import pytest

from migrations_app.services.rate_limit import rate_limit_reset
from tests.support.simulated_plans import SIM_KEY_ENV


@pytest.fixture
def offline_calls_unlimited(settings, monkeypatch):
    """Shadow, evaluation and judge calls reach the simulator with its key and no per-provider bucket."""
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    settings.CUTOVER_OFFLINE_RATE_LIMITS = {"default": 0}
    rate_limit_reset()
