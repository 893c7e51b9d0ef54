"""A Hypothesis state machine over a plan's life: operator actions, scheduler ticks with a moving clock, health
checks after good or bad event streams, and edits. Whatever order they come in, the invariants hold:

- a rolled-back plan serves the candidate to nobody (0 %, rollback flag set);
- completed and aborted are terminal: nothing changes the plan's position afterwards;
- every applied transition has exactly one audit event, and the audit trail chains state to state;
- the plan's and the environment's config versions only rise, and rise on every applied transition.

Each example runs on its own environment, endpoints and plan, so examples sharing the test's database never
see each other's rows.
"""

import itertools
import random
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from migrations_app.domain.lifecycle import TERMINAL_STATES, Action, IllegalTransition, State, transition
from migrations_app.domain.schedule import Move
from migrations_app.models import AuditEvent, Environment, MigrationPlan
from migrations_app.services.endpoints import endpoint_create, endpoint_update
from migrations_app.services.health import plan_health_check
from migrations_app.services.ingest import events_ingest
from migrations_app.services.plans import PlanNotEditable, RuleSpec, StepSpec, plan_act, plan_create, plan_update
from migrations_app.services.rollout import plan_schedule
from migrations_app.services.sdk_keys import environment_get_or_create
from tests.support.streams import request_events

STEPS = [StepSpec(percent=5, min_hold_seconds=60, min_samples=40, deadline_seconds=900),
         StepSpec(percent=50, min_hold_seconds=60, min_samples=40, deadline_seconds=900),
         StepSpec(percent=100, min_hold_seconds=60, min_samples=40, deadline_seconds=900)]
RULES = [RuleSpec(metric="error_rate", comparison="absolute", threshold=0.2, action="rollback", severity="critical",
                  sustained_seconds=0, min_samples=40)]
POSITION = ("state", "candidate_percent", "rollback", "current_step_index", "paused_from")
_examples = itertools.count(1)


class PlanLifeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        n = next(_examples)
        self.rng = random.Random(n)
        environment = environment_get_or_create(name=f"prop-{n}", actor="test")
        endpoint = {"api_key_env": "OPENAI_API_KEY", "input_price_per_mtok": 3, "output_price_per_mtok": 15,
                    "context_window": 128000, "default_params": {"temperature": 0.0}, "base_url": None}
        baseline = endpoint_create(actor="test", name=f"prop-{n}-base", provider="openai", model="base", **endpoint)
        self.candidate = endpoint_create(actor="test", name=f"prop-{n}-cand", provider="openai", model="cand",
                                         **endpoint)
        plan = plan_create(actor="test", key=f"prop-{n}", environment=environment, baseline=baseline,
                           candidate=self.candidate, steps=STEPS, rules=RULES, evaluation_duration_seconds=0,
                           shadow_duration_seconds=60, final_hold_seconds=60, cleanup_after_seconds=60)
        self.plan_id, self.key, self.environment_id = plan.pk, plan.key, environment.pk
        self.step_percents = [step.percent for step in STEPS]
        self.now = timezone.now()
        self.edits = 0  # edits that change the SDK document (each bumps the config version once)
        self.applied = 0  # lifecycle transitions applied, by a person, the scheduler or the health checker
        self.terminal_position = None
        self.seen = self._observe()
        self.first = self.seen

    # --- observation -----------------------------------------------------------------------------------

    def _plan(self) -> MigrationPlan:
        return MigrationPlan.objects.get(pk=self.plan_id)

    def _observe(self) -> dict:
        plan = self._plan()
        return {"position": tuple(getattr(plan, name) for name in POSITION), "state": plan.state,
                "step_serial": plan.step_serial, "plan_version": plan.config_version,
                "env_version": Environment.objects.get(pk=self.environment_id).config_version,
                "transitions": self._transitions().count()}

    def _transitions(self):
        lifecycle = [f"plan.{action.value}" for action in Action]
        return AuditEvent.objects.filter(plan_id=self.plan_id, action__in=lifecycle).order_by("id")

    def _later(self, seconds: float):
        self.now = max(self.now, timezone.now()) + timedelta(seconds=seconds)
        return self.now

    # --- rules -----------------------------------------------------------------------------------------

    # Abort ends every example it touches, so it is drawn less often than the actions that move a plan on.
    @rule(action=st.sampled_from([*Action, Action.ADVANCE, Action.ADVANCE, Action.RESUME, Action.RETRY,
                                  Action.START] * 2 + [Action.ABORT]))
    def act(self, action):
        plan = self._plan()
        try:
            expected = transition(plan.position, action, self.step_percents)
        except IllegalTransition:
            expected = None
        try:
            after = plan_act(actor="user:ops", plan_key=self.key, action=action, reason="property")
        except IllegalTransition as refused:
            assert expected is None, f"{action} refused in {plan.state} but the domain allows it"
            assert refused.state == plan.state
            return
        assert expected is not None, f"{action} applied in {plan.state} but the domain forbids it"
        assert after.position == expected
        self.applied += 1

    @rule(seconds=st.sampled_from([1, 30, 61, 120, 1000]))
    def scheduler_tick(self, seconds):
        before = self._observe()
        decision = plan_schedule(plan_id=self.plan_id, now=self._later(seconds))
        after = self._observe()
        if decision is None or decision.move is Move.WAIT:
            assert after["position"] == before["position"], decision
        else:
            assert after["transitions"] == before["transitions"] + 1, decision
            self.applied += 1

    @rule(arm=st.sampled_from(["baseline", "candidate"]), healthy=st.booleans(), count=st.sampled_from([20, 60]))
    def post_events(self, arm, healthy, count):
        events = request_events(plan=self.key, arm=arm, count=count, rng=self.rng,
                                error_rate=0.01 if healthy else 0.6, ts=timezone.now())
        result = events_ingest(environment_id=self.environment_id, payload={"events": events})
        assert (result.accepted, result.duplicate) == (count, 0)
        again = events_ingest(environment_id=self.environment_id, payload={"events": events[:5]})
        assert (again.accepted, again.duplicate) == (0, 5)

    @rule(seconds=st.sampled_from([0, 5, 60]))
    def health_tick(self, seconds):
        before = self._observe()
        plan_health_check(plan_id=self.plan_id, now=self._later(seconds))
        after = self._observe()
        if after["position"] != before["position"]:  # the checker's only move is a rollback
            self.applied += 1
            assert after["state"] == State.ROLLED_BACK
            assert self._transitions().last().actor == "system:health-checker"

    @rule(rate=st.sampled_from([0.05, 0.1, 0.2, 0.5]))
    def edit_plan(self, rate):
        plan = self._plan()
        try:
            updated = plan_update(actor="user:ops", plan=plan, shadow_sample_rate=rate)
        except PlanNotEditable:
            assert plan.state in TERMINAL_STATES
            return
        assert plan.state not in TERMINAL_STATES
        if plan.shadow_sample_rate != rate:
            self.edits += 1
        assert updated.shadow_sample_rate == rate

    @rule(temperature=st.sampled_from([0.0, 0.3, 0.7]))
    def edit_endpoint(self, temperature):
        plan = self._plan()
        changed = self.candidate.default_params != {"temperature": temperature}
        self.candidate = endpoint_update(actor="user:ops", endpoint=self.candidate,
                                         default_params={"temperature": temperature})
        if changed and plan.state not in TERMINAL_STATES:
            self.edits += 1

    @rule()
    def start(self):  # the draft is the one state few random actions get out of
        if self._plan().state == State.DRAFT:
            plan_act(actor="user:ops", plan_key=self.key, action=Action.START)
            self.applied += 1

    # Two compound rules reach the deeper states more often than independent draws would. (No preconditions
    # on the plan's state: it depends on the wall clock, and Hypothesis needs the same draws on a replay.)
    @rule()
    def candidate_regresses(self):
        if self._plan().state not in (State.ROLLING_OUT, State.OPTIMIZING, State.PAUSED):
            return
        self.post_events("baseline", True, 60)
        self.post_events("candidate", False, 60)
        self.health_tick(5)

    @rule()
    def healthy_step_held(self):
        if self._plan().state not in (State.EVALUATING, State.SHADOWING, State.ROLLING_OUT, State.OPTIMIZING):
            return
        if self._plan().state == State.SHADOWING:  # no shadow comparisons here: a person moves the plan on
            self.act(Action.ADVANCE)
        self.post_events("baseline", True, 60)
        self.post_events("candidate", True, 60)
        self.health_tick(0)
        self.scheduler_tick(120)

    # --- invariants ------------------------------------------------------------------------------------

    @invariant()
    def rolled_back_serves_nobody(self):
        plan = self._plan()
        if plan.state == State.ROLLED_BACK:
            assert plan.candidate_percent == 0 and plan.rollback is True
        if plan.rollback:
            assert plan.state == State.ROLLED_BACK or plan.paused_from == State.ROLLED_BACK
        if plan.state == State.ABORTED:
            assert plan.candidate_percent == 0

    @invariant()
    def terminal_states_have_no_exit(self):
        now = self._observe()
        if self.terminal_position is not None:
            assert now["position"] == self.terminal_position
            assert now["plan_version"] == self.seen["plan_version"]
        elif now["state"] in TERMINAL_STATES:
            self.terminal_position = now["position"]

    @invariant()
    def every_transition_audited_and_versions_rise(self):
        now, seen = self._observe(), self.seen
        # Every applied transition writes one audit event and raises both config versions.
        applied = self.applied
        assert now["transitions"] - self.first["transitions"] == applied
        assert now["plan_version"] - self.first["plan_version"] == applied + self.edits
        assert now["env_version"] - self.first["env_version"] == applied + self.edits
        assert now["plan_version"] >= seen["plan_version"] and now["env_version"] >= seen["env_version"]
        if now["position"] != seen["position"]:
            assert now["plan_version"] > seen["plan_version"] and now["env_version"] > seen["env_version"]
        # The trail chains: each event starts where the one before it ended, and the last is where the plan is.
        state = State.DRAFT.value
        for event in self._transitions():
            assert event.before["state"] == state, (event.action, event.before, state)
            state = event.after["state"]
        assert state == now["state"]
        self.seen = now


@pytest.mark.django_db
@pytest.mark.timeout(120)
def test_plan_lifecycle__any_sequence_of_actions_ticks_and_events__invariants_hold():
    run_state_machine_as_test(PlanLifeMachine, settings=settings(
        max_examples=30, stateful_step_count=30, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
