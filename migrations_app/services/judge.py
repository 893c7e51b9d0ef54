"""A plan's (or an evaluation run's) LLM judge, as the shadow and evaluation workers call it.

The judge's prompt is Cutover's own call, made like every shadow and evaluation call (shadow.offline_call):
a token from the judge provider's bucket first, the offline retry policy and timeout, and its cost counted
as shadow or evaluation spend (`cost_usd`, stored beside the comparison), never in live-traffic rollups.

A judge that cannot answer (its provider failing, its bucket empty, its model turned into a moving alias
since the plan was saved) never loses the comparison it was asked about: the score is the neutral 0.5,
marked `parsed: False` with the error, as cutover.comparators.judge marks a verdict it cannot parse.
"""

from __future__ import annotations

import dataclasses
import random

from django.conf import settings

from cutover.comparators import JudgeComparator, Score
from cutover.comparators.judge import DEFAULT_RUBRIC
from cutover.providers import ChatRequest, Completion, EndpointSpec, ProviderError

from ..domain.judging import judge_model_problem
from ..models import ModelEndpoint
from .rate_limit import RateLimited


class Judge:
    """`judge(candidate, reference, request_text=…)` → Score (1 candidate better, 0.5 as good, 0 worse), the
    reason and, in `details`, the judge's model, the order shown (`candidate_first`) and `parsed`."""

    def __init__(self, endpoint: ModelEndpoint | None, rubric: str = "", *, rng: random.Random | None = None,
                 max_wait: float | None = None) -> None:
        self.spec = endpoint.spec() if endpoint is not None else None  # None: misconfigured, every score neutral
        self.rubric = rubric.strip() or DEFAULT_RUBRIC
        self.rng = rng or random.Random()
        self.max_wait = max_wait
        self.cost_usd = 0.0  # every call's, failed verdicts' included

    def _call(self, spec: EndpointSpec, request: ChatRequest) -> Completion:
        from .shadow import offline_call  # shadow imports this module

        request = dataclasses.replace(request, timeout=settings.CUTOVER_OFFLINE_CALL_TIMEOUT)
        outcome = offline_call(spec, request, max_wait=self.max_wait)
        if not outcome.ok:
            raise outcome.error
        return outcome.completion

    def _failed(self, why: str, error: str) -> Score:
        model = self.spec.model if self.spec else None
        return Score(0.5, f"judge {model}: no verdict ({why})" if model else f"judge: no verdict ({why})",
                     {"judge_model": model, "parsed": False, "error": error})

    def __call__(self, candidate: str, reference: str, *, request_text: str = "") -> Score:
        if self.spec is None:
            return self._failed("no judge endpoint is configured", "no_judge_endpoint")
        problem = judge_model_problem(self.spec.model)
        if problem:  # the endpoint was edited since the plan was saved
            return self._failed(problem, "unpinned_model")
        comparator = JudgeComparator(self.spec, rubric=self.rubric, rng=self.rng, caller=self._call)
        try:
            return comparator(candidate, reference, request_text=request_text)
        except RateLimited as limited:
            return self._failed(str(limited), "rate_limited_locally")
        except ProviderError as error:
            return self._failed(f"{error.kind.value}: {str(error)[:300]}", error.kind.value)
        finally:
            self.cost_usd += comparator.cost_usd


def judge_request_text(messages: list[dict[str, str]], params: dict | None = None) -> str:
    """The request as the judge reads it: the system prompt (when a param) and every message."""
    system = (params or {}).get("system")
    return "\n".join(([f"system: {system}"] if system else []) + [f"{m['role']}: {m['content']}" for m in messages])


def judged(score: Score) -> bool:
    """Whether the judge gave a verdict (not an unparseable answer or a failure, scored a neutral 0.5)."""
    return score.details.get("parsed", True) is not False
