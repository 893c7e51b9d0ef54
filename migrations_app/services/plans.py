"""Plan writes: creation with the playbook's defaults, edits, and lifecycle transitions.

Each change is one atomic block: lock the plan row, apply the domain's transition, save, write an audit
event, bump the plan's and the environment's config versions; once committed, the SDK config document is
rebuilt and long-polls wake.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..domain import playbook
from ..domain.lifecycle import Action, IllegalTransition, Position, State, transition
from ..models import Environment, HealthRule, MigrationPlan, ModelEndpoint, RolloutStep
from .alerts import alert_fire_for_rollback, alerts_resolve_plan_level
from .audit import audit_record
from .config_cache import plan_config_bump

# The fields a lifecycle transition may change, as the audit trail shows them.
_POSITION_FIELDS = ("state", "candidate_percent", "rollback", "current_step_index", "paused_from")
# The plan's evaluation and shadow settings: success criteria and the shadow gate.
QUALITY_FIELDS = ("requires_evaluation_pass", "min_accuracy", "max_p95_ms", "max_cost_per_request",
                  "shadow_comparator", "shadow_agreement_threshold", "shadow_max_disagreement",
                  "shadow_min_comparisons", "noise_floor_fraction", "judge_endpoint", "judge_rubric")
# Plan fields an edit may change after creation.
EDITABLE_FIELDS = (
    "description", "baseline_prompt_adapter", "candidate_prompt_adapter", "shadow_sample_rate",
    "evaluation_duration_seconds", "shadow_duration_seconds", "final_hold_seconds", "cleanup_after_seconds",
    *QUALITY_FIELDS,
)
# What of a plan the SDK config document shows: a change to these wakes every poller.
DOCUMENT_FIELDS = ("baseline", "candidate", "baseline_prompt_adapter", "candidate_prompt_adapter",
                   "shadow_sample_rate")
# Endpoints and steps are the plan's identity once it runs; change them only while it is a draft.
DRAFT_ONLY_FIELDS = ("baseline", "candidate", "steps")


class PlanNotEditable(Exception):
    def __init__(self, state: str, fields: Sequence[str], message: str = "") -> None:
        self.state = state
        self.fields = list(fields)
        super().__init__(message or f"{', '.join(fields)} can only change while the plan is a draft; it is {state}")


@dataclass(frozen=True)
class StepSpec:
    percent: float
    min_hold_seconds: int = 0
    min_samples: int = 0
    needs_approval: bool = False
    monitor: str = ""  # blank: the playbook's default by percent
    deadline_seconds: int | None = None


@dataclass(frozen=True)
class RuleSpec:
    metric: str
    comparison: str
    threshold: float
    action: str
    severity: str = "warning"
    sustained_seconds: int = 300
    min_samples: int = 200
    enabled: bool = True


def default_steps() -> list[StepSpec]:
    return [StepSpec(**asdict(step)) for step in playbook.DEFAULT_STEPS]


def default_rules() -> list[RuleSpec]:
    return [
        RuleSpec(**{name: getattr(value, "value", value) for name, value in asdict(rule).items()})
        for rule in playbook.DEFAULT_RULES
    ]


def _snapshot(plan: MigrationPlan, fields: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in fields}


def _replace_steps(plan: MigrationPlan, steps: Sequence[StepSpec]) -> None:
    plan.steps.all().delete()
    RolloutStep.objects.bulk_create(
        RolloutStep(plan=plan, order=index, **asdict(step)) for index, step in enumerate(steps)
    )


def _replace_rules(plan: MigrationPlan, rules: Sequence[RuleSpec]) -> None:
    plan.rules.all().delete()
    HealthRule.objects.bulk_create(HealthRule(plan=plan, **asdict(rule)) for rule in rules)


@transaction.atomic
def plan_create(*, actor: str, key: str, environment: Environment, baseline: ModelEndpoint,
                candidate: ModelEndpoint, steps: Sequence[StepSpec] | None = None,
                rules: Sequence[RuleSpec] | None = None, **fields: Any) -> MigrationPlan:
    """A draft plan; steps and rules left out take the playbook's defaults."""
    unknown = set(fields) - set(EDITABLE_FIELDS) - {"salt"}
    if unknown:
        raise TypeError(f"unknown plan fields: {sorted(unknown)}")
    plan = MigrationPlan.objects.create(
        key=key, environment=environment, baseline=baseline, candidate=candidate, created_by=actor, **fields
    )
    _replace_steps(plan, default_steps() if steps is None else steps)
    _replace_rules(plan, default_rules() if rules is None else rules)
    audit_record(actor=actor, action="plan.created", plan=plan, after=plan_summary(plan))
    return plan


def plan_update(*, actor: str, plan: MigrationPlan, steps: Sequence[StepSpec] | None = None,
                rules: Sequence[RuleSpec] | None = None, reason: str = "", **fields: Any) -> MigrationPlan:
    """Edit a plan. Rules and settings may change at any time before the plan ends; endpoints and steps
    only while it is a draft."""
    with transaction.atomic():
        plan = MigrationPlan.objects.select_for_update().get(pk=plan.pk)
        if plan.state in (State.COMPLETED, State.ABORTED):
            raise PlanNotEditable(plan.state, [], f"a {plan.state} plan cannot change")
        before = plan_summary(plan)
        # Restating what a plan already has is no edit (a plan file applied again, say).
        if steps is not None and [asdict(step) for step in steps] == before["steps"]:
            steps = None
        unknown = set(fields) - set(EDITABLE_FIELDS) - {"baseline", "candidate"}
        if unknown:
            raise TypeError(f"not editable plan fields: {sorted(unknown)}")
        fields = {name: value for name, value in fields.items() if getattr(plan, name) != value}
        draft_only = [name for name in DRAFT_ONLY_FIELDS if name in fields or (name == "steps" and steps is not None)]
        if plan.state != State.DRAFT and draft_only:
            raise PlanNotEditable(plan.state, draft_only)
        for name, value in fields.items():
            setattr(plan, name, value)
        if steps is not None:
            _replace_steps(plan, steps)
        if rules is not None:
            _replace_rules(plan, rules)
        after = plan_summary(plan)
        if after == before:
            return plan
        if any(before[name] != after[name] for name in DOCUMENT_FIELDS):
            plan_config_bump(plan)
        plan.save()
        audit_record(actor=actor, action="plan.updated", plan=plan, before=_changed(before, after),
                     after=_changed(after, before), reason=reason)
    return plan


def plan_act(*, actor: str, plan_key: str, action: Action | str, reason: str = "", evidence: dict | None = None,
             page_on_rollback: bool = True) -> MigrationPlan:
    """Apply a lifecycle action. Raises IllegalTransition (with the current state) when it does not apply.

    Concurrent actions on one plan serialise on the plan's row lock, so each sees the state the previous
    one left and every applied transition has exactly one audit event. `evidence` (the statistics behind
    an automatic decision) goes into the audit event. A rollback pages on-call unless the caller has
    already raised the alert that explains it (`page_on_rollback=False`, as the health checker does).
    """
    action = Action(action)
    with transaction.atomic():
        plan = MigrationPlan.objects.select_for_update().get(key=plan_key)
        step_percents = list(plan.steps.order_by("order").values_list("percent", flat=True))
        new_position = transition(plan.position, action, step_percents)
        if plan.state == State.EVALUATING and action is Action.ADVANCE:
            _require_evaluation_gate(plan)
        before = _snapshot(plan, _POSITION_FIELDS)
        _apply_position(plan, new_position)
        plan_config_bump(plan)
        plan.save()
        after = _snapshot(plan, _POSITION_FIELDS) | ({"evidence": evidence} if evidence else {})
        audit_record(actor=actor, action=f"plan.{action.value}", plan=plan, before=before, after=after,
                     reason=reason)
        if action is Action.ROLLBACK and page_on_rollback:
            alert_fire_for_rollback(plan=plan, actor=actor, reason=reason)
        if action in (Action.RESUME, Action.RETRY, Action.ABORT):
            alerts_resolve_plan_level(plan=plan)
    return plan


def _require_evaluation_gate(plan: MigrationPlan) -> None:
    """A plan that requires a passing evaluation run moves on to shadow only with one."""
    gate = selectors.evaluation_gate(plan=plan)
    if gate not in ("passed", "not_required"):
        raise IllegalTransition(State.EVALUATING, Action.ADVANCE,
                                f"the plan requires a passing evaluation run before it leaves evaluation; "
                                f"the latest run is {gate}")


def _apply_position(plan: MigrationPlan, position: Position) -> None:
    now = timezone.now()
    if position.state != plan.state:
        plan.state_changed_at = now
    pausing_or_resuming = State.PAUSED in (position.state, plan.state)
    if position.step_index != plan.current_step_index or (position.state != plan.state and not pausing_or_resuming):
        # A new step: fresh data, fresh hold.
        plan.step_started_at = now
        plan.step_serial += 1
    elif plan.state == State.PAUSED and position.state != State.PAUSED:
        # A resumed step keeps the data gathered so far but gets its hold and deadline afresh (it may have
        # been paused because its analysis ran out of time).
        plan.step_started_at = now
    plan.state = position.state.value
    plan.candidate_percent = position.candidate_percent
    plan.rollback = position.rollback
    plan.current_step_index = position.step_index
    plan.paused_from = position.paused_from.value if position.paused_from else None


def _changed(this: dict, other: dict) -> dict:
    return {name: value for name, value in this.items() if other.get(name) != value}


def plan_summary(plan: MigrationPlan) -> dict[str, Any]:
    """What the audit trail records of a plan's settings (never a secret: endpoints by name)."""
    return {
        **_snapshot(plan, _POSITION_FIELDS + EDITABLE_FIELDS),
        "judge_endpoint": plan.judge_endpoint.name if plan.judge_endpoint else None,
        "environment": plan.environment.name,
        "baseline": plan.baseline.name,
        "candidate": plan.candidate.name,
        "steps": [
            {"percent": s.percent, "min_hold_seconds": s.min_hold_seconds, "min_samples": s.min_samples,
             "needs_approval": s.needs_approval, "monitor": s.monitor, "deadline_seconds": s.deadline_seconds}
            for s in plan.steps.order_by("order")
        ],
        "rules": [
            {"metric": r.metric, "comparison": r.comparison, "threshold": r.threshold, "action": r.action,
             "severity": r.severity, "sustained_seconds": r.sustained_seconds, "min_samples": r.min_samples,
             "enabled": r.enabled}
            for r in plan.rules.order_by("id")
        ],
    }


__all__ = [
    "IllegalTransition", "PlanNotEditable", "RuleSpec", "StepSpec", "default_rules", "default_steps",
    "plan_act", "plan_create", "plan_update",
]
