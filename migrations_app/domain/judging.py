"""The LLM judge as a plan's shadow comparator (or an evaluation run's): which settings go together.

The judge (cutover/comparators/judge.py) scores a comparison 1 (candidate better), 0.5 (as good) or 0 (worse),
where the other comparators score likeness. So a plan that compares with the judge needs a judge endpoint whose
model is pinned, and a disagreement threshold of at most 0.5: above it, every tie would count as a disagreement.
"""

from __future__ import annotations

from cutover.comparators import REGISTRY
from cutover.comparators.judge import is_pinned

JUDGE = "judge"
# What a plan's shadow_comparator and an evaluation run's comparator may name.
COMPARATORS: tuple[str, ...] = (*sorted(REGISTRY), JUDGE)
# A judge's tie scores 0.5: a threshold above it counts "as good" as a disagreement.
JUDGE_MAX_THRESHOLD = 0.5
RUBRIC_MAX_LENGTH = 4000


def judge_model_problem(model: str) -> str | None:
    """Why this model cannot judge (a moving alias: its scores from two weeks apart would not compare), or None."""
    if is_pinned(model):
        return None
    return (f"the judge's model {model!r} is a moving alias; choose an endpoint whose model is pinned to a dated "
            f"version (e.g. gpt-4o-2024-08-06, claude-3-5-sonnet-20241022)")


def judge_settings_problems(*, comparator: str, judge_model: str | None, threshold: float | None,
                            threshold_field: str) -> dict[str, str]:
    """Problems with a comparator, the judge endpoint's model (None: no judge endpoint) and the agreement
    threshold, keyed by the field to blame (`judge_endpoint`, `threshold_field`)."""
    problems: dict[str, str] = {}
    if judge_model is not None:
        problem = judge_model_problem(judge_model)
        if problem:
            problems["judge_endpoint"] = problem
    if comparator != JUDGE:
        return problems
    if judge_model is None:
        problems["judge_endpoint"] = "required when the comparator is judge: the endpoint of the model that judges"
    if threshold is not None and threshold > JUDGE_MAX_THRESHOLD:
        problems[threshold_field] = (
            f"at most {JUDGE_MAX_THRESHOLD} with the judge, which scores 1 (candidate better), 0.5 (as good) or "
            f"0 (worse): above {JUDGE_MAX_THRESHOLD} every tie counts as a disagreement; use 0.5")
    return problems
