"""Shadow comparisons (phase 2): an SDK mirrors a sample of live requests with the baseline's answer; a
worker asks the candidate the same request (the plan's prompt adapter applied) — and, on a fraction of
samples, the baseline once more to measure its noise floor — scores the pair and stores it once.

These calls never reach a user, are rate-limited per provider (rate_limit.py) and their cost is stored on
ShadowComparison rows, never in the live-traffic rollups.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cutover.comparators import get_comparator, json_equal, length_ratio, normalised_match, refusal_match, token_f1
from cutover.providers import ChatRequest, Completion, EndpointSpec, Message, ProviderError, RetryPolicy, complete
from cutover.providers.errors import RETRYABLE_KINDS
from cutover.providers.loop_client import loop_complete
from cutover.providers.pricing import cost_usd
from cutover.providers.prompt_adapters import UnknownPromptAdapter, apply_prompt_adapter

from ..domain.events import BatchInvalid
from ..domain.judging import JUDGE
from ..models import MigrationPlan, ShadowComparison, ShadowSample
from . import shadow_store
from .judge import Judge, judge_request_text
from .rate_limit import RateLimited, rate_limit_acquire

ROLES = ("system", "user", "assistant")
PARAMS = ("system", "max_tokens", "temperature", "stop", "response_format", "task")  # task: for prompt adapters
TASK_MAX_LENGTH = 100
LEASE_SECONDS = 120  # the default of settings.CUTOVER_SHADOW_LEASE_SECONDS
MAX_ATTEMPTS = 4
# One retry inside a call; a task that still fails is retried by Celery later, with backoff.
OFFLINE_RETRY_POLICY = RetryPolicy(max_retries=1, base_delay=0.2, max_delay=2.0)


@dataclass(frozen=True)
class ShadowIngestResult:
    accepted: int
    duplicate: int
    sample_id: int


class ShadowRetry(Exception):
    def __init__(self, countdown: float, why: str) -> None:
        self.countdown = countdown
        super().__init__(why)


# --- requests and calls (shared with evaluation runs) --------------------------------------------------


def parse_messages(value: Any) -> tuple[list[dict[str, str]] | None, list[str]]:
    if not isinstance(value, list) or not value:
        return None, ["must be a non-empty list of {role, content}"]
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content"), str):
            return None, [f"item {index}: needs role (one of {', '.join(ROLES)}) and content (a string)"]
        out.append({"role": item["role"], "content": item["content"]})
    if not any(m["role"] == "user" for m in out):
        return None, ["needs at least one user message"]
    return out, []


def parse_params(value: Any) -> tuple[dict[str, Any], list[str]]:
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        return {}, ["must be an object"]
    params = {k: v for k, v in value.items() if k in PARAMS and v is not None}
    problems = []
    if "max_tokens" in params and (not isinstance(params["max_tokens"], int) or params["max_tokens"] <= 0):
        problems.append("max_tokens must be a positive integer")
    if "temperature" in params and not isinstance(params["temperature"], int | float):
        problems.append("temperature must be a number")
    if params.get("response_format", "text") not in ("text", "json"):
        problems.append("response_format must be text or json")
    if "stop" in params and not (isinstance(params["stop"], list) and all(isinstance(s, str) for s in params["stop"])):
        problems.append("stop must be a list of strings")
    for name in ("system", "task"):
        if name in params and not isinstance(params[name], str):
            problems.append(f"{name} must be a string")
    if isinstance(params.get("task"), str) and len(params["task"]) > TASK_MAX_LENGTH:
        problems.append(f"task must be at most {TASK_MAX_LENGTH} characters")
    return params, problems


def chat_request(messages: list[dict[str, str]], params: dict[str, Any]) -> ChatRequest:
    return ChatRequest(
        messages=tuple(Message(m["role"], m["content"]) for m in messages),
        system=params.get("system"), max_tokens=params.get("max_tokens"), temperature=params.get("temperature"),
        stop=tuple(params.get("stop") or ()), response_format=params.get("response_format", "text"),
        timeout=settings.CUTOVER_OFFLINE_CALL_TIMEOUT,
    )


def request_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


@dataclass(frozen=True)
class CallOutcome:
    completion: Completion | None
    error: ProviderError | None = None

    @property
    def ok(self) -> bool:
        return self.completion is not None


def offline_call(spec: EndpointSpec, request: ChatRequest, *, adapter: str = "", task: str | None = None,
                 max_wait: float | None = None) -> CallOutcome:
    """One call Cutover makes on its own account: the prompt adapter applied, a token taken from the
    provider's bucket first (RateLimited if none comes in time), provider errors returned, not raised."""
    adapted = apply_prompt_adapter(adapter or None, request, task=task)
    rate_limit_acquire(provider=spec.provider.value, max_wait=max_wait)
    # OpenAI-format endpoints: raw HTTP on the process's event loop (loop_client.py), the SDKs otherwise.
    call = loop_complete if settings.CUTOVER_OFFLINE_FAST_PATH else complete
    try:
        return CallOutcome(call(spec, adapted, retry_policy=OFFLINE_RETRY_POLICY))
    except ProviderError as error:
        return CallOutcome(None, error)


# --- ingest (POST /api/v1/sdk/shadow) -----------------------------------------------------------------


def _noise_floor_pick(request_id: uuid.UUID, fraction: float) -> bool:
    """Stable per request id: the same sample is (or is not) re-asked however often it is posted."""
    digest = hashlib.sha256(f"noise\x1f{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _number(value: Any, name: str, errors: dict, *, integer: bool = False, default: Any = None) -> Any:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
            integer and not float(value).is_integer()):
        errors[name] = [f"must be a non-negative {'integer' if integer else 'number'}"]
        return default
    return int(value) if integer else float(value)


def parse_shadow(payload: Any, *, plans: dict[str, MigrationPlan], now: datetime) -> dict[str, Any]:
    """Validate a shadow sample; BatchInvalid names every bad field."""
    if not isinstance(payload, dict):
        raise BatchInvalid({"non_field_errors": ["the body must be a JSON object"]})
    errors: dict[str, Any] = {}
    plan = plans.get(payload.get("plan")) if isinstance(payload.get("plan"), str) else None
    if plan is None:
        errors["plan"] = ["required" if payload.get("plan") is None else "no such plan in this SDK key's environment"]
    try:
        request_id = uuid.UUID(str(payload.get("request_id")))
    except ValueError:
        errors["request_id"] = ["must be a UUID"]
        request_id = None
    request = payload.get("request")
    request_errors: dict[str, list[str]] = {}
    messages, params = None, {}
    if not isinstance(request, dict):
        errors["request"] = ["must be an object with messages and params"]
    else:
        messages, problems = parse_messages(request.get("messages"))
        if problems:
            request_errors["messages"] = problems
        params, problems = parse_params(request.get("params"))
        if problems:
            request_errors["params"] = problems
    if request_errors:
        errors["request"] = request_errors
    baseline = payload.get("baseline")
    baseline_errors: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    if not isinstance(baseline, dict):
        errors["baseline"] = ["must be an object with text, latency_ms, input_tokens, output_tokens, model"]
    else:
        if not isinstance(baseline.get("text"), str):
            baseline_errors["text"] = ["required, a string"]
        fields = {
            "baseline_text": baseline.get("text") if isinstance(baseline.get("text"), str) else "",
            "baseline_latency_ms": _number(baseline.get("latency_ms"), "latency_ms", baseline_errors),
            "baseline_input_tokens": _number(baseline.get("input_tokens"), "input_tokens", baseline_errors,
                                             integer=True, default=0),
            "baseline_output_tokens": _number(baseline.get("output_tokens"), "output_tokens", baseline_errors,
                                              integer=True, default=0),
            "baseline_model": str(baseline.get("model") or "")[:200],
        }
    if baseline_errors:
        errors["baseline"] = baseline_errors
    segment = payload.get("segment") or ""
    if not isinstance(segment, str) or len(segment) > 100:
        errors["segment"] = ["must be a string of at most 100 characters"]
    ts = now
    if payload.get("ts") is not None:
        parsed = parse_datetime(payload["ts"]) if isinstance(payload["ts"], str) else None
        if parsed is None or parsed.tzinfo is None:
            errors["ts"] = ["must be an ISO 8601 time with a zone, e.g. 2026-11-28T10:00:00Z"]
        else:
            ts = parsed
    if errors:
        raise BatchInvalid(errors)
    return {"plan": plan, "request_id": request_id, "request": {"messages": messages, "params": params},
            "segment": segment, "ts": ts, **fields}


def shadow_sample_ingest(*, environment_id: int, payload: Any) -> ShadowIngestResult:
    """Store a shadow sample once per request id and enqueue its comparison when the insert commits."""
    from .. import tasks

    plans = {p.key: p for p in MigrationPlan.objects.filter(environment_id=environment_id)
             .select_related("baseline")}
    values = parse_shadow(payload, plans=plans, now=timezone.now())
    plan: MigrationPlan = values.pop("plan")
    request_id = values.pop("request_id")
    values["baseline_cost"] = cost_usd(plan.baseline.spec(), input_tokens=values["baseline_input_tokens"],
                                       output_tokens=values["baseline_output_tokens"])
    values["rerun_baseline"] = _noise_floor_pick(request_id, plan.noise_floor_fraction)
    with transaction.atomic():
        sample, created = ShadowSample.objects.get_or_create(request_id=request_id, defaults={"plan": plan, **values})
        if created:
            # robust: a broker outage must not fail a stored sample; shadow_samples_sweep re-enqueues it.
            transaction.on_commit(lambda: tasks.shadow_compare.delay(sample.pk), robust=True)
    return ShadowIngestResult(accepted=int(created), duplicate=int(not created), sample_id=sample.pk)


# --- the comparison (the Celery task's body) ----------------------------------------------------------


def score_pair(candidate: str, reference: str, *, comparator: str, response_format: str = "text",
               judge: Judge | None = None, request_text: str = "") -> dict[str, Any]:
    """Every cheap comparator's Score of candidate against reference; `comparator` is the one that decides
    (`judge`, asked about `request_text`, when it is the LLM judge)."""
    scores = {
        "normalised": normalised_match(candidate, reference),
        "token_f1": token_f1(candidate, reference),
        "length_ratio": length_ratio(candidate, reference),
        "refusal": refusal_match(candidate, reference),
    }
    if response_format == "json" or comparator == "json_equal":
        scores["json_equal"] = json_equal(candidate, reference)
    if comparator == JUDGE:
        scores[JUDGE] = (judge or Judge(None))(candidate, reference, request_text=request_text)
    elif comparator not in scores:
        scores[comparator] = get_comparator(comparator)(candidate, reference)
    return {name: score.as_dict() for name, score in scores.items()}


def _claim(sample_id: int) -> ShadowSample | None:
    """Take the sample's lease and read it with its plan and endpoints (one statement on PostgreSQL); None when
    it is done already or another run holds it."""
    now = timezone.now()
    return shadow_store.claim_and_read(
        sample_id, now=now, lease_until=now + timedelta(seconds=settings.CUTOVER_SHADOW_LEASE_SECONDS))


def shadow_release(*, sample_id: int, error: str) -> None:
    """Give up a claimed sample's lease (its task failed unexpectedly and will be retried)."""
    # The database may be the thing that failed; the lease then simply expires.
    with contextlib.suppress(Exception):
        _release(sample_id, error)


SWEEP_AFTER_SECONDS = 300


def shadow_samples_sweep(*, now: datetime | None = None) -> int:
    """Re-enqueue samples still pending well after they arrived (their task was lost: a worker killed before
    acknowledging with a broker that does not redeliver, a retry budget used up by a database outage).
    Safe to overlap with a late task: the lease and the one-to-one key keep it to one comparison."""
    from .. import tasks

    now = now or timezone.now()
    stale = list(ShadowSample.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now), state="pending", attempts__lt=MAX_ATTEMPTS * 2,
        received_at__lt=now - timedelta(seconds=SWEEP_AFTER_SECONDS)).values_list("pk", flat=True)[:5000])
    for sample_id in stale:
        tasks.shadow_compare.delay(sample_id)
    return len(stale)


def _release(sample_id: int, error: str, *, final: bool = False) -> None:
    ShadowSample.objects.filter(pk=sample_id).update(lease_until=None, last_error=error[:2000],
                                                     **({"state": "failed"} if final else {}))


def shadow_compare(*, sample_id: int) -> ShadowComparison | None:
    """Compare one sample: idempotent (a stored comparison is returned untouched) and safe to run twice at
    once (a lease on the sample lets one run make the calls; a one-to-one key stores one comparison).
    Raises ShadowRetry when the candidate's provider is rate-limited or failing for now."""
    sample = _claim(sample_id)
    if sample is None:  # done already (then its comparison is stored) or another run holds the lease
        comparison = ShadowComparison.objects.filter(sample_id=sample_id).first()
        leased = ShadowSample.objects.filter(pk=sample_id, state="pending", lease_until__isnull=False).values_list(
            "lease_until", flat=True).first()
        if comparison is None and leased is not None:
            # The holder may have died mid-call (a worker killed: this is its task, redelivered). Come back when
            # its lease runs out rather than leave the sample to the sweep.
            raise ShadowRetry(max((leased - timezone.now()).total_seconds(), 0.0) + 0.5,
                              "another run holds the sample's lease")
        return comparison
    plan = sample.plan
    messages, params = sample.request["messages"], sample.request.get("params") or {}
    request = chat_request(messages, params)
    task = params.get("task")
    try:
        # The baseline's second answer (noise floor) is asked at the same time as the candidate's.
        rerun_future = (_rerun_pool().submit(offline_call, plan.baseline.spec(), request,
                                             adapter=plan.baseline_prompt_adapter, task=task)
                        if sample.rerun_baseline else None)
        try:
            candidate = offline_call(plan.candidate.spec(), request, adapter=plan.candidate_prompt_adapter, task=task)
        finally:
            rerun = _rerun_result(rerun_future)
    except RateLimited as limited:
        _release(sample_id, str(limited))
        raise ShadowRetry(limited.wait + 1, str(limited)) from limited
    except UnknownPromptAdapter as error:
        _release(sample_id, str(error), final=True)
        return None
    if not candidate.ok and candidate.error.kind in RETRYABLE_KINDS and sample.attempts < MAX_ATTEMPTS:
        _release(sample_id, str(candidate.error))
        raise ShadowRetry(2 ** sample.attempts, f"candidate: {candidate.error}")
    return _store(sample, plan, candidate, rerun, response_format=params.get("response_format", "text"))


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _rerun_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="cutover-noise-floor")
        return _pool


def _rerun_result(future) -> CallOutcome | None:
    if future is None:
        return None
    try:
        outcome = future.result()
    except RateLimited:
        return None  # the noise floor is a side measurement: skip it rather than hold the comparison back
    return outcome if outcome.ok else None


def _store(sample: ShadowSample, plan: MigrationPlan, candidate: CallOutcome, rerun: CallOutcome | None, *,
           response_format: str) -> ShadowComparison:
    comparator, threshold = plan.shadow_comparator, plan.shadow_agreement_threshold
    fields: dict[str, Any] = {"plan": plan, "segment": sample.segment, "comparator": comparator}
    judging: dict[str, Any] = {}
    if comparator == JUDGE:  # its calls are shadow spend, stored with the comparison
        judge = Judge(plan.judge_endpoint, plan.judge_rubric)
        judging = {"judge": judge, "request_text": judge_request_text(sample.request["messages"],
                                                                      sample.request.get("params"))}
    if candidate.ok:
        c = candidate.completion
        scores = score_pair(c.text, sample.baseline_text, comparator=comparator, response_format=response_format,
                            **judging)
        score = scores[comparator]["value"]
        fields |= {"candidate_text": c.text, "candidate_latency_ms": c.latency_ms,
                   "candidate_input_tokens": c.input_tokens, "candidate_output_tokens": c.output_tokens,
                   "candidate_cost": c.cost_usd, "scores": scores, "score": score, "disagree": score < threshold}
    else:
        error = candidate.error
        fields |= {"candidate_ok": False, "candidate_error": error.kind.value, "score": 0.0, "disagree": True,
                   "candidate_text": "", "scores": {"error": {"value": 0.0, "reason": str(error)[:500]}}}
    if rerun is not None:
        r = rerun.completion
        noise = score_pair(r.text, sample.baseline_text, comparator=comparator,
                           response_format=response_format, **judging)[comparator]["value"]
        fields |= {"rerun_text": r.text, "rerun_latency_ms": r.latency_ms, "rerun_cost": r.cost_usd,
                   "noise_score": noise, "noise_disagree": noise < threshold}
    if judging:
        fields["judge_cost"] = judging["judge"].cost_usd
    comparison = ShadowComparison(sample=sample, **fields)
    try:
        shadow_store.store(comparison)  # and the sample marked done, atomically (one statement on PostgreSQL)
    except IntegrityError:  # another run stored it first
        return ShadowComparison.objects.get(sample_id=sample.pk)
    return comparison


def shadow_export_rows(comparisons) -> Any:
    """JSON lines for fine-tuning or a person's review: the request, both answers, the scores."""
    for c in comparisons:
        sample = c.sample
        yield {
            "request_id": str(sample.request_id), "plan": c.plan.key, "segment": c.segment,
            "ts": sample.ts.isoformat(), "request": sample.request,
            "baseline": {"model": sample.baseline_model, "text": sample.baseline_text,
                         "latency_ms": sample.baseline_latency_ms, "cost": sample.baseline_cost},
            "candidate": {"model": c.plan.candidate.model, "ok": c.candidate_ok, "error": c.candidate_error or None,
                          "text": c.candidate_text, "latency_ms": c.candidate_latency_ms, "cost": c.candidate_cost},
            "baseline_rerun": None if c.rerun_text is None else {"text": c.rerun_text, "score": c.noise_score},
            "comparator": c.comparator, "score": c.score, "disagree": c.disagree, "scores": c.scores,
            "judge_cost": c.judge_cost,
        }

