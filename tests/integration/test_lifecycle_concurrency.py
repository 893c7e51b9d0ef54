"""Concurrent lifecycle actions on one plan serialise on its row lock."""

import random
import threading

import pytest
from django.db import connection

from migrations_app.domain.lifecycle import Action, IllegalTransition, Position, State, transition
from migrations_app.models import AuditEvent, MigrationPlan
from migrations_app.services.plans import plan_act
from tests import factories

THREADS = 20


@pytest.mark.django_db(transaction=True)
def test_20_threads_firing_actions_at_one_plan__valid_state_and_one_audit_event_per_applied_transition():
    plan = factories.make_plan()
    plan_act(actor="test", plan_key=plan.key, action="start")
    plan_act(actor="test", plan_key=plan.key, action="advance")
    audited_before = AuditEvent.objects.filter(plan=plan).count()
    version_before = MigrationPlan.objects.get().config_version

    rng = random.Random(7)
    # Rollback and retry keep the plan from running into `completed`, so the race lasts.
    choices = [Action.ADVANCE, Action.ADVANCE, Action.PAUSE, Action.RESUME, Action.ROLLBACK, Action.RETRY]
    scripts = [[rng.choice(choices) for _ in range(5)] for _ in range(THREADS)]
    applied, refused, crashed = [], [], []
    barrier = threading.Barrier(THREADS)

    def fire(script):
        try:
            barrier.wait()
            for action in script:
                try:
                    plan_act(actor=f"thread-{threading.get_ident()}", plan_key=plan.key, action=action)
                    applied.append(action)
                except IllegalTransition:
                    refused.append(action)
        except Exception as error:  # anything else is a failure of the test subject
            crashed.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=(script,)) for script in scripts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not crashed, crashed
    assert len(applied) + len(refused) == THREADS * 5
    assert len(applied) >= THREADS // 2  # the race really happened

    final = MigrationPlan.objects.get()
    assert final.state in {s.value for s in State}
    if final.state == State.ROLLED_BACK:
        assert final.candidate_percent == 0 and final.rollback
    events = list(AuditEvent.objects.filter(plan=plan).order_by("id"))[audited_before:]
    assert len(events) == len(applied)
    assert final.config_version == version_before + len(applied)

    # The audit trail is one unbroken chain: each event starts where the previous one ended, and each step
    # is a legal transition of the domain's state machine.
    steps = list(final.steps.order_by("order").values_list("percent", flat=True))
    for previous, event in zip(events, events[1:], strict=False):
        assert event.before == previous.after
    for event in events:
        before = Position(State(event.before["state"]), event.before["candidate_percent"], event.before["rollback"],
                          event.before["current_step_index"],
                          State(event.before["paused_from"]) if event.before["paused_from"] else None)
        after = transition(before, Action(event.action.removeprefix("plan.")), steps)
        assert after.state.value == event.after["state"]
        assert after.candidate_percent == event.after["candidate_percent"]
    assert events[-1].after["state"] == final.state
