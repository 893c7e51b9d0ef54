"""The rollout scheduler's decisions, as pure functions of what a tick knows about a plan.

Each phase moves on by itself while the evidence allows and stops by itself when it does not:
evaluation → shadow once the evaluation gate passed (or the plan does not require one); shadow → rollout
after its duration and minimum comparisons, with disagreement above the noise floor under the plan's
limit; each rollout step after its hold and its minimum samples per arm, when every health rule is
healthy — not merely short of data — or when a person approves a step that asks for it; the last step
after the final hold → optimizing; optimizing → completed after the cleanup period.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Move(StrEnum):
    ADVANCE = "advance"
    WAIT = "wait"
    PAUSE = "pause"  # stop and tell a person: the analysis cannot conclude, or a gate failed


class MonitorLevel(StrEnum):
    CLOSELY = "closely"  # more frequent checks; alert-level rules act as rollback rules
    NORMAL = "normal"


# The playbook watches the first, smallest steps closely.
CLOSELY_UP_TO_PERCENT = 25.0
# A candidate whose provider rate-limits more than this share of its requests lacks capacity: hold the ramp.
RATE_LIMITED_HOLD_SHARE = 0.01


@dataclass(frozen=True)
class Decision:
    move: Move
    reason: str
    waiting_for: tuple[str, ...] = field(default=())

    @classmethod
    def wait(cls, *waiting_for: str) -> "Decision":
        return cls(Move.WAIT, "waiting for " + "; ".join(waiting_for), tuple(waiting_for))


def monitor_level(percent: float, configured: str = "") -> MonitorLevel:
    if configured:
        return MonitorLevel(configured)
    return MonitorLevel.CLOSELY if percent <= CLOSELY_UP_TO_PERCENT else MonitorLevel.NORMAL


def step_deadline_seconds(min_hold_seconds: int, configured: int | None) -> int:
    """How long a step may go without a conclusive analysis before the plan pauses: by default twice its
    hold, and at least an hour past it."""
    if configured is not None:
        return configured
    return max(2 * min_hold_seconds, min_hold_seconds + 3600)


def evaluation_decision(*, gate: str) -> Decision:
    if gate in ("passed", "not_required"):
        return Decision(Move.ADVANCE, f"evaluation {gate.replace('_', ' ')}")
    if gate == "failed":
        return Decision(Move.PAUSE, "the evaluation run did not meet the plan's success criteria")
    return Decision.wait("a passing evaluation run")


@dataclass(frozen=True)
class ShadowFacts:
    elapsed_seconds: float
    duration_seconds: int
    comparisons: int
    min_comparisons: int
    # The interval of disagreement above the noise floor (None: not measurable yet).
    disagreement_above_noise_lower: float | None
    disagreement_above_noise_upper: float | None
    disagreement_above_noise: float | None
    max_disagreement: float


def shadow_decision(facts: ShadowFacts) -> Decision:
    waiting = []
    if facts.elapsed_seconds < facts.duration_seconds:
        waiting.append(f"the shadow phase's duration ({facts.elapsed_seconds:.0f} of {facts.duration_seconds} s)")
    if facts.comparisons < facts.min_comparisons:
        waiting.append(f"shadow comparisons ({facts.comparisons} of {facts.min_comparisons})")
    if waiting:
        return Decision.wait(*waiting)
    lower, upper, limit = (facts.disagreement_above_noise_lower, facts.disagreement_above_noise_upper,
                           facts.max_disagreement)
    if lower is None or upper is None:
        return Decision.wait("a measurable noise floor")
    if upper <= limit:
        return Decision(Move.ADVANCE, f"disagreement above the noise floor at most {upper:.1%} (limit {limit:.1%})")
    if lower > limit:
        return Decision(Move.PAUSE, f"the candidate disagrees with the baseline on "
                                    f"{(facts.disagreement_above_noise or 0):.1%} of prompts above the noise floor "
                                    f"(at least {lower:.1%}; limit {limit:.1%})")
    return Decision.wait(f"more shadow comparisons: disagreement above the noise floor is between {lower:.1%} and "
                         f"{upper:.1%}, around the limit of {limit:.1%}")


@dataclass(frozen=True)
class StepFacts:
    percent: float
    is_last: bool
    held_seconds: float
    min_hold_seconds: int
    final_hold_seconds: int
    deadline_seconds: int
    min_samples: int
    needs_approval: bool
    candidate_requests: int
    baseline_requests: int
    candidate_rate_limited: int
    rule_statuses: Sequence[str]  # one verdict status per enabled rule
    # Requests per minute of the plan (both arms) in this step, and the candidate endpoint's limit.
    observed_requests_per_minute: float
    candidate_rpm_limit: int | None
    next_percent: float


def rollout_decision(facts: StepFacts) -> Decision:
    hold = max(facts.min_hold_seconds, facts.final_hold_seconds if facts.is_last else 0)
    waiting = []
    if facts.held_seconds < hold:
        waiting.append(f"the step's hold ({facts.held_seconds:.0f} of {hold} s)")
    short = min(facts.candidate_requests, facts.baseline_requests)
    if short < facts.min_samples:
        waiting.append(f"samples per arm ({short} of {facts.min_samples})")
    if facts.candidate_requests and facts.candidate_rate_limited / facts.candidate_requests > RATE_LIMITED_HOLD_SHARE:
        waiting.append(f"the candidate's provider to stop rate-limiting "
                       f"({facts.candidate_rate_limited / facts.candidate_requests:.1%} of requests got 429)")
    if not facts.is_last and facts.candidate_rpm_limit is not None:
        needed = facts.observed_requests_per_minute * facts.next_percent / 100
        if needed > facts.candidate_rpm_limit:
            waiting.append(f"headroom: {facts.next_percent:g} % would send the candidate {needed:.0f} requests per "
                           f"minute, above its limit of {facts.candidate_rpm_limit}")
    unhealthy = [status for status in facts.rule_statuses if status != "healthy"]
    if unhealthy:
        waiting.append(f"every health rule to be healthy ({len(facts.rule_statuses) - len(unhealthy)} of "
                       f"{len(facts.rule_statuses)} are)")
    if not waiting:
        if facts.needs_approval:
            return Decision.wait("a person's approval (press advance)")
        return Decision(Move.ADVANCE, f"{facts.percent:g} % held {facts.held_seconds:.0f} s with every rule healthy")
    if facts.held_seconds >= facts.deadline_seconds and unhealthy:
        return Decision(Move.PAUSE, f"inconclusive: after {facts.held_seconds:.0f} s at {facts.percent:g} % the "
                                    f"analysis has not shown every rule healthy ({', '.join(sorted(set(unhealthy)))})")
    return Decision.wait(*waiting)


def optimizing_decision(*, elapsed_seconds: float, cleanup_after_seconds: int) -> Decision:
    if elapsed_seconds >= cleanup_after_seconds:
        return Decision(Move.ADVANCE, f"stable for {elapsed_seconds:.0f} s: the baseline is no longer needed")
    return Decision.wait(f"the cleanup date ({elapsed_seconds:.0f} of {cleanup_after_seconds} s stable)")
