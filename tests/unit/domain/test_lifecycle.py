"""The plan lifecycle of INTERFACES.md, as a pure state machine."""

import pytest

from migrations_app.domain.lifecycle import (
    Action,
    IllegalTransition,
    Position,
    State,
    allowed_actions,
    transition,
)

STEPS = [5, 25, 50, 100]
DRAFT = Position(State.DRAFT)


def walk(*actions: Action, start: Position = DRAFT) -> Position:
    position = start
    for action in actions:
        position = transition(position, action, STEPS)
    return position


def test_happy_path__start_then_advance_through_every_phase__ends_completed_at_full_traffic():
    seen = []
    position = walk(Action.START)
    seen.append((position.state, position.candidate_percent))
    for _ in range(7):
        position = transition(position, Action.ADVANCE, STEPS)
        seen.append((position.state, position.candidate_percent))
    assert seen == [
        (State.EVALUATING, 0), (State.SHADOWING, 0), (State.ROLLING_OUT, 5), (State.ROLLING_OUT, 25),
        (State.ROLLING_OUT, 50), (State.ROLLING_OUT, 100), (State.OPTIMIZING, 100), (State.COMPLETED, 100),
    ]


def test_pause_then_resume__returns_to_the_same_step_and_percent():
    rolling = walk(Action.START, Action.ADVANCE, Action.ADVANCE, Action.ADVANCE)
    paused = transition(rolling, Action.PAUSE, STEPS)
    assert (paused.state, paused.paused_from, paused.candidate_percent) == (State.PAUSED, State.ROLLING_OUT, 25)
    assert transition(paused, Action.RESUME, STEPS) == rolling


def test_rollback__from_rolling_out__candidate_zero_and_flag_set():
    rolled_back = walk(Action.START, Action.ADVANCE, Action.ADVANCE, Action.ROLLBACK)
    assert rolled_back == Position(State.ROLLED_BACK, candidate_percent=0, rollback=True)


def test_rollback__from_paused_rollout__allowed():
    paused = walk(Action.START, Action.ADVANCE, Action.ADVANCE, Action.PAUSE)
    assert transition(paused, Action.ROLLBACK, STEPS).state is State.ROLLED_BACK


def test_retry__after_rollback__restarts_at_the_first_step_with_flag_cleared():
    rolled_back = walk(Action.START, Action.ADVANCE, Action.ADVANCE, Action.ADVANCE, Action.ROLLBACK)
    assert transition(rolled_back, Action.RETRY, STEPS) == Position(State.ROLLING_OUT, 5, False, 0)


@pytest.mark.parametrize("action", [a for a in Action if a not in (Action.RETRY, Action.ABORT)])
def test_rolled_back__any_action_but_retry_or_abort__refused_with_current_state(action):
    rolled_back = walk(Action.START, Action.ADVANCE, Action.ADVANCE, Action.ROLLBACK)
    with pytest.raises(IllegalTransition) as refused:
        transition(rolled_back, action, STEPS)
    assert refused.value.state is State.ROLLED_BACK


@pytest.mark.parametrize("terminal", [State.COMPLETED, State.ABORTED])
@pytest.mark.parametrize("action", list(Action))
def test_terminal_states__no_action_leaves_them(terminal, action):
    with pytest.raises(IllegalTransition, match="terminal"):
        transition(Position(terminal), action, STEPS)


def test_promote__from_rollout__optimizing_at_full_traffic():
    promoted = walk(Action.START, Action.ADVANCE, Action.ADVANCE, Action.PROMOTE)
    assert (promoted.state, promoted.candidate_percent) == (State.OPTIMIZING, 100)


def test_abort__from_draft__aborted():
    assert walk(Action.ABORT).state is State.ABORTED


def test_start__twice__second_is_illegal():
    with pytest.raises(IllegalTransition, match="cannot start a plan that is evaluating"):
        walk(Action.START, Action.START)


def test_advance_into_rollout__plan_without_steps__refused():
    shadowing = walk(Action.START, Action.ADVANCE)
    with pytest.raises(IllegalTransition, match="no rollout steps"):
        transition(shadowing, Action.ADVANCE, [])


def test_rollback__from_evaluation__illegal_because_no_user_has_seen_the_candidate():
    with pytest.raises(IllegalTransition):
        walk(Action.START, Action.ROLLBACK)


def test_allowed_actions__draft__only_start_and_abort():
    assert allowed_actions(Position(State.DRAFT), STEPS) == [Action.START, Action.ABORT]


def test_allowed_actions__rolling_out__the_operator_buttons():
    rolling = walk(Action.START, Action.ADVANCE, Action.ADVANCE)
    assert allowed_actions(rolling, STEPS) == [
        Action.PAUSE, Action.ADVANCE, Action.PROMOTE, Action.ROLLBACK, Action.ABORT]


def test_invariant__rolled_back_always_serves_no_candidate_traffic():
    for start in (walk(Action.START, Action.ADVANCE), walk(Action.START, Action.ADVANCE, Action.ADVANCE),
                  walk(Action.START, Action.ADVANCE, Action.PROMOTE)):
        rolled_back = transition(start, Action.ROLLBACK, STEPS)
        assert rolled_back.candidate_percent == 0 and rolled_back.rollback
