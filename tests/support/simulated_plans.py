"""A plan whose baseline and candidate are models on an in-process simulator (evaluation and shadow tests)."""

from __future__ import annotations

import itertools

from cutover.providers import ChatRequest, Message, complete
from cutover.simulator import SimulatorServer
from migrations_app.models import MigrationPlan, ModelEndpoint
from migrations_app.services.endpoints import endpoint_create
from migrations_app.services.evaluation import plan_quality_settings_update
from migrations_app.services.plans import plan_create
from migrations_app.services.sdk_keys import environment_get_or_create

SIM_KEY_ENV = "CUTOVER_TEST_SIM_KEY"
_names = itertools.count(1)


def sim_endpoint(simulator: SimulatorServer, model: str, **overrides) -> ModelEndpoint:
    fields = {"provider": "openai", "model": model, "base_url": simulator.openai_base_url,
              "api_key_env": SIM_KEY_ENV, "input_price_per_mtok": 3, "output_price_per_mtok": 15,
              "context_window": 128000, "default_params": {}} | overrides
    return endpoint_create(actor="test", name=f"{model}-{next(_names)}", **fields)


def sim_plan(simulator: SimulatorServer, *, baseline_model: str, candidate_model: str, key: str = "shadow-plan",
             **quality) -> MigrationPlan:
    plan = plan_create(actor="test", key=key, environment=environment_get_or_create(name="prod", actor="test"),
                       baseline=sim_endpoint(simulator, baseline_model),
                       candidate=sim_endpoint(simulator, candidate_model, input_price_per_mtok=1,
                                              output_price_per_mtok=5))
    if quality:
        plan = plan_quality_settings_update(actor="test", plan=plan, **quality)
    return plan


def live_baseline_answer(plan: MigrationPlan, prompt: str) -> dict:
    """What an SDK would post as the baseline's side: the live call's answer, timing and usage."""
    completion = complete(plan.baseline.spec(), ChatRequest(messages=(Message("user", prompt),)))
    return {"text": completion.text, "latency_ms": completion.latency_ms, "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens, "model": completion.model}
