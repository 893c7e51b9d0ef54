import pytest
from migrations_app import selectors
from tests.integration import test_shadow as t
pytestmark = pytest.mark.django_db
simulator = t.simulator
_offline_calls_unlimited = t._offline_calls_unlimited
@pytest.mark.parametrize("alter", [0.3, 0.0])
def test_probe(simulator, alter):
    base = t.nondeterministic_baseline(simulator, f"p-base{alter}")
    cand = t.script(simulator, f"p-cand{alter}", {"kind": "mirror", "mirror_model": base, "alter_fraction": alter})
    plan = t.sim_plan(simulator, baseline_model=base, candidate_model=cand, noise_floor_fraction=0.5)
    t.mirror_traffic(plan, t.PROMPTS)
    s = selectors.shadow_summary(plan=plan)
    print("\nRESULT", alter, s.noise_samples, s.noise_floor, s.disagreement, s.disagreement_above_noise, s.interval, s.verdict)
