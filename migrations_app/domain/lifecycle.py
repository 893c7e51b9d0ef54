"""The plan lifecycle of INTERFACES.md as a pure state machine.

draft → evaluating → shadowing → rolling_out → optimizing → completed; `paused` from any running phase
(resume returns to it); `rolled_back` left only by `retry` (back to the first rollout step) or `abort`;
`aborted` and `completed` are terminal.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum


class State(StrEnum):
    DRAFT = "draft"
    EVALUATING = "evaluating"
    SHADOWING = "shadowing"
    ROLLING_OUT = "rolling_out"
    OPTIMIZING = "optimizing"
    COMPLETED = "completed"
    PAUSED = "paused"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


class Action(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    ABORT = "abort"
    RETRY = "retry"


TERMINAL_STATES = frozenset({State.COMPLETED, State.ABORTED})
RUNNING_STATES = frozenset({State.EVALUATING, State.SHADOWING, State.ROLLING_OUT, State.OPTIMIZING})
# Phases in which the candidate may already serve users, so a rollback means something (also when paused
# from one of them).
ROLLBACKABLE_STATES = frozenset({State.SHADOWING, State.ROLLING_OUT, State.OPTIMIZING})
FULL_TRAFFIC = 100.0


@dataclass(frozen=True)
class Position:
    """Everything a transition may change on a plan."""

    state: State
    candidate_percent: float = 0.0
    rollback: bool = False
    step_index: int | None = None
    paused_from: State | None = None


class IllegalTransition(Exception):
    def __init__(self, state: State, action: Action, why: str = "") -> None:
        self.state = state
        self.action = action
        self.why = why or f"cannot {action.value} a plan that is {state.value}"
        super().__init__(self.why)


def allowed_actions(position: Position, step_percents: Sequence[float]) -> list[Action]:
    """The actions that `transition` would accept now, in declaration order (for buttons and hints)."""
    allowed = []
    for action in Action:
        try:
            transition(position, action, step_percents)
        except IllegalTransition:
            continue
        allowed.append(action)
    return allowed


def transition(position: Position, action: Action, step_percents: Sequence[float]) -> Position:
    """The position after `action`, or IllegalTransition naming the current state.

    `step_percents` are the plan's rollout steps in order; they must be non-empty and rising.
    """
    state = position.state
    if state in TERMINAL_STATES:
        raise IllegalTransition(state, action, f"the plan is {state.value}: a terminal state has no exit")

    if action is Action.START and state is State.DRAFT:
        return Position(State.EVALUATING)

    if action is Action.ADVANCE:
        return _advance(position, step_percents)

    if action is Action.PROMOTE and state in (State.SHADOWING, State.ROLLING_OUT):
        return Position(State.OPTIMIZING, candidate_percent=FULL_TRAFFIC)

    if action is Action.PAUSE and state in RUNNING_STATES:
        return replace(position, state=State.PAUSED, paused_from=state)

    if action is Action.RESUME and state is State.PAUSED and position.paused_from is not None:
        return replace(position, state=position.paused_from, paused_from=None)

    if action is Action.ROLLBACK and (state in ROLLBACKABLE_STATES or position.paused_from in ROLLBACKABLE_STATES):
        return Position(State.ROLLED_BACK, candidate_percent=0.0, rollback=True)

    if action is Action.ABORT:
        return Position(State.ABORTED, candidate_percent=0.0)

    if action is Action.RETRY and state is State.ROLLED_BACK:
        return _first_step(position, action, step_percents)

    raise IllegalTransition(state, action)


def _advance(position: Position, step_percents: Sequence[float]) -> Position:
    state = position.state
    if state is State.EVALUATING:
        return Position(State.SHADOWING)
    if state is State.SHADOWING:
        return _first_step(position, Action.ADVANCE, step_percents)
    if state is State.ROLLING_OUT:
        next_index = (position.step_index or 0) + 1
        if next_index < len(step_percents):
            return Position(State.ROLLING_OUT, candidate_percent=float(step_percents[next_index]),
                            step_index=next_index)
        return Position(State.OPTIMIZING, candidate_percent=FULL_TRAFFIC)
    if state is State.OPTIMIZING:
        return Position(State.COMPLETED, candidate_percent=FULL_TRAFFIC)
    raise IllegalTransition(state, Action.ADVANCE)


def _first_step(position: Position, action: Action, step_percents: Sequence[float]) -> Position:
    if not step_percents:
        raise IllegalTransition(position.state, action, "the plan has no rollout steps")
    return Position(State.ROLLING_OUT, candidate_percent=float(step_percents[0]), step_index=0)
