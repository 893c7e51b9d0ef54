"""The demo's scripted rehearsal (`manage.py demo`): what the simulated providers do, the plan it applies and
the regression it injects. The command (management/commands/demo.py) runs the processes around it.

Durations are seconds instead of weeks; everything else is a real plan on the real scheduler and health
checker: a simulated gpt-4 → claude-3-5-sonnet migration through evaluation, shadow, 5 % and 25 %, where the
candidate regresses and is rolled back automatically.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from .domain.lifecycle import IllegalTransition, State
from .models import EvaluationDataset, MigrationPlan, ModelEndpoint, NotificationChannel
from .services.endpoints import endpoint_create, endpoint_update
from .services.evaluation import dataset_import, evaluation_run_create, plan_quality_settings_update
from .services.notifications import channel_create, channel_update
from .services.plans import RuleSpec, StepSpec, plan_act, plan_create
from .services.sdk_keys import environment_get_or_create, sdk_key_create

ACTOR = "cli:demo"
ENVIRONMENT = "demo"
PLAN_KEY = "support-bot"
BASELINE_MODEL = "gpt-4"
CANDIDATE_MODEL = "claude-3-5-sonnet"
# The simulator accepts any key; the endpoints name this variable and the demo sets it for the sidecar and
# the worker (the database holds the variable's name, never a key).
KEY_ENV = "CUTOVER_DEMO_PROVIDER_KEY"
ADMIN_USERNAME = "demo"
DATASET = "demo-support-questions"
WEBHOOK_CHANNEL = "demo-webhook-sink"

# The fast clocks of the rehearsal, for the worker and beat.
FAST_TICKS = {"CUTOVER_ROLLOUT_TICK_SECONDS": "0.5", "CUTOVER_HEALTH_TICK_SECONDS": "0.5",
              "CUTOVER_HEALTH_NORMAL_INTERVAL_SECONDS": "0.5", "CUTOVER_ALERT_MIN_CLEAR_SECONDS": "5"}

# gpt-4 answers in ~20 ms (p95 60 ms); claude-3-5-sonnet is scripted to mirror it: the same answers (so shadow
# and evaluation see no disagreement) at the same speed.
SCENARIO = {
    "seed": 11,
    "default": {"latency": {"median_ms": 20, "p95_ms": 60}, "answer": {"kind": "deterministic", "words": 24}},
    "models": {
        BASELINE_MODEL: {"latency": {"median_ms": 20, "p95_ms": 60},
                         "answer": {"kind": "deterministic", "words": 24}},
        CANDIDATE_MODEL: {"latency": {"median_ms": 20, "p95_ms": 60},
                          "answer": {"kind": "mirror", "mirror_model": BASELINE_MODEL, "alter_fraction": 0.0}},
    },
}
# What goes wrong at 25 %: the candidate's provider fails often and answers slowly.
REGRESSION = {"errors": {"server_error": 0.6}, "latency": {"median_ms": 250, "p95_ms": 900}}

# Seconds-scale steps: each proves the candidate healthy on a few hundred requests, then moves on. 25 % holds
# long enough for the injected regression to be caught there (it is watched closely: alert rules roll back).
STEPS = [
    StepSpec(percent=5, min_hold_seconds=3, min_samples=40, deadline_seconds=240),
    StepSpec(percent=25, min_hold_seconds=120, min_samples=40, deadline_seconds=240),
    StepSpec(percent=50, min_hold_seconds=5, min_samples=40, deadline_seconds=240),
    StepSpec(percent=100, min_hold_seconds=5, min_samples=40, deadline_seconds=240),
]
RULES = [
    # Critical: more than one request in five failing rolls back at any step.
    RuleSpec(metric="error_rate", comparison="absolute", threshold=0.2, action="rollback", severity="critical",
             sustained_seconds=0, min_samples=40),
    # The candidate's p95 latency at more than 3× the baseline's: an alert, which rolls back at 5 % and 25 %.
    RuleSpec(metric="latency_p95", comparison="ratio", threshold=3.0, action="alert", severity="warning",
             sustained_seconds=0, min_samples=40),
    # Cheaper is the point of this migration: a candidate costing more than the baseline per request rolls back.
    RuleSpec(metric="cost_per_request", comparison="ratio", threshold=1.5, action="rollback", severity="critical",
             sustained_seconds=0, min_samples=40),
]
QUALITY = {
    "requires_evaluation_pass": True, "min_accuracy": 0.9, "max_p95_ms": 2000.0, "max_cost_per_request": 0.01,
    "shadow_comparator": "token_f1", "shadow_min_comparisons": 60, "shadow_max_disagreement": 0.15,
    "noise_floor_fraction": 0.2,
}
SHADOW_SECONDS = 5

_TOPICS = ("my order", "a refund", "my invoice", "the shipping address", "my card payment", "a delivery date",
           "my account balance", "the return policy", "a damaged parcel", "my subscription")
_ASKS = ("Where is", "How do I change", "Can you explain", "What happened to", "Please help with")


def question(n: int) -> str:
    """The n-th of 50 support questions the simulated application asks (and the evaluation dataset holds)."""
    return f"{_ASKS[n % len(_ASKS)]} {_TOPICS[(n // len(_ASKS)) % len(_TOPICS)]}? (ticket {n % 50})"


@dataclass
class DemoSetup:
    plan: MigrationPlan
    sdk_key: str
    admin_password: str
    webhook_secret: str


def _endpoint(name: str, **fields) -> ModelEndpoint:
    existing = ModelEndpoint.objects.filter(name=name).first()
    if existing is None:
        return endpoint_create(actor=ACTOR, name=name, **fields)
    return endpoint_update(actor=ACTOR, endpoint=existing, **fields)


def _free_plan_key() -> str:
    key, n = PLAN_KEY, 1
    while MigrationPlan.objects.filter(key=key).exists():
        n += 1
        key = f"{PLAN_KEY}-{n}"
    return key


def admin_login() -> str:
    """Create (or reset) the superuser `demo` with a fresh random password; returns the password."""
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    user = user_model.objects.filter(username=ADMIN_USERNAME).first() or user_model(username=ADMIN_USERNAME)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    return password


def retire_previous_demo_plans() -> list[str]:
    """Abort the plans earlier runs left in the demo environment, so the sidecar serves only this run's."""
    retired = []
    for plan in MigrationPlan.objects.filter(environment__name=ENVIRONMENT).exclude(
            state__in=(State.COMPLETED, State.ABORTED, State.DRAFT)):
        try:
            plan_act(actor=ACTOR, plan_key=plan.key, action="abort", reason="a new demo run started")
            retired.append(plan.key)
        except IllegalTransition:
            pass
    return retired


def set_up(*, simulator_url: str, webhook_url: str) -> DemoSetup:
    """The environment, endpoints, plan (a draft), evaluation dataset, webhook channel, SDK key and admin."""
    retire_previous_demo_plans()
    environment = environment_get_or_create(name=ENVIRONMENT, actor=ACTOR)
    baseline = _endpoint(BASELINE_MODEL, provider="openai", model=BASELINE_MODEL, base_url=f"{simulator_url}/v1",
                         api_key_env=KEY_ENV, input_price_per_mtok=30, output_price_per_mtok=60,
                         context_window=128000, default_params={})
    candidate = _endpoint(CANDIDATE_MODEL, provider="anthropic", model=CANDIDATE_MODEL, base_url=simulator_url,
                          api_key_env=KEY_ENV, input_price_per_mtok=3, output_price_per_mtok=15,
                          context_window=200000, default_params={})
    with transaction.atomic():
        plan = plan_create(
            actor=ACTOR, key=_free_plan_key(), environment=environment, baseline=baseline, candidate=candidate,
            steps=STEPS, rules=RULES, shadow_sample_rate=0.3, evaluation_duration_seconds=0,
            shadow_duration_seconds=SHADOW_SECONDS, final_hold_seconds=5, cleanup_after_seconds=5,
            description="The demo: a simulated gpt-4 → claude-3-5-sonnet migration (manage.py demo).",
        )
    plan = plan_quality_settings_update(actor=ACTOR, plan=plan, reason="the demo's success criteria", **QUALITY)
    if not EvaluationDataset.objects.filter(name=DATASET).exists():
        lines = "\n".join(f'{{"id": "q{n}", "input": "{question(n)}", "segment": "support"}}' for n in range(30))
        dataset_import(actor=ACTOR, name=DATASET, content=lines, fmt="jsonl",
                       description="30 support questions for the demo's evaluation run")
    webhook_secret = secrets.token_hex(16)
    config = {"url": webhook_url, "signing_secret": webhook_secret}
    channel = NotificationChannel.objects.filter(name=WEBHOOK_CHANNEL).first()
    if channel is None:
        channel_create(actor=ACTOR, name=WEBHOOK_CHANNEL, kind="webhook", plan=plan, config=config,
                       min_severity="warning")
    else:
        channel_update(actor=ACTOR, channel=channel, plan=plan, environment=None, config=config,
                       min_severity="warning", enabled=True)
    _, sdk_key = sdk_key_create(actor=ACTOR, environment=environment, name="demo sidecar")
    return DemoSetup(plan=plan, sdk_key=sdk_key, admin_password=admin_login(), webhook_secret=webhook_secret)


def start(plan: MigrationPlan) -> None:
    """Start the plan and queue its evaluation run (one repetition over the dataset)."""
    plan_act(actor=ACTOR, plan_key=plan.key, action="start", reason="demo rehearsal")
    evaluation_run_create(actor=ACTOR, dataset=EvaluationDataset.objects.get(name=DATASET), plan=plan,
                          repetitions=1, comparator="normalised")
