"""Evaluation (phase 1): datasets of cases, runs of baseline and candidate over them (N repetitions, calls
in parallel with a bound per provider, in a Celery task), per-call results, a report against the plan's
success criteria, and scheduled runs that alert on a regression after the migration.

Evaluation calls never reach users, take tokens from the per-provider bucket (rate_limit.py) and their cost
is stored on EvaluationResult rows, never in live-traffic rollups.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import uuid
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cutover.comparators import Score, get_comparator, json_schema_valid
from cutover.providers.normalize import looks_like_refusal, normalize_output

from ..domain.comparisons import Attempt, Criteria, evaluation_report, recommend, regression
from ..domain.judging import JUDGE, JUDGE_MAX_THRESHOLD, judge_settings_problems
from ..domain.rules import Severity
from ..domain.text import NUL_MESSAGE
from ..models import (
    Alert,
    AlertState,
    Arm,
    EvaluationCase,
    EvaluationDataset,
    EvaluationResult,
    EvaluationRun,
    EvaluationRunState,
    EvaluationSchedule,
    MigrationPlan,
    ModelEndpoint,
)
from .audit import audit_record
from .judge import Judge, judge_request_text, judged
from .plans import QUALITY_FIELDS, plan_update
from .rate_limit import RateLimited
from .shadow import chat_request, offline_call, parse_messages, parse_params

REGRESSION_ALERT = "EVALUATION_REGRESSION"
DEFAULT_ACCURACY_THRESHOLD = 0.8  # with the judge: JUDGE_MAX_THRESHOLD (at least as good as the reference)


class DatasetInvalid(Exception):
    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__(json.dumps(errors)[:500])


class SettingsInvalid(ValueError):
    """Evaluation or shadow settings that do not go together (a run's, a plan's); `errors` names each field."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in errors.items()))


# --- datasets ---------------------------------------------------------------------------------------------


def _case_from(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    if row.get("messages") not in (None, ""):
        raw = row["messages"]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = None
        messages, problems = parse_messages(raw)
    else:
        prompt = row.get("input", row.get("prompt"))
        messages, problems = (None, ["give messages, or input (the user's message)"]) if not isinstance(
            prompt, str) or not prompt else parse_messages([{"role": "user", "content": prompt}])
    if problems:
        errors["messages"] = problems
    params_raw = row.get("params") or {}
    if isinstance(params_raw, str):
        try:
            params_raw = json.loads(params_raw)
        except ValueError:
            params_raw = "not JSON"
    params, problems = parse_params(params_raw)
    if problems:
        errors["params"] = problems
    if row.get("system"):
        params["system"] = str(row["system"])
    schema = row.get("json_schema", row.get("schema"))
    if isinstance(schema, str):
        try:
            schema = json.loads(schema) if schema.strip() else None
        except ValueError:
            errors["json_schema"] = ["not JSON"]
            schema = None
    if schema is not None:
        import jsonschema

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as error:
            errors["json_schema"] = [f"not a valid JSON Schema: {error.message}"]
        params.setdefault("response_format", "json")
    expected = row.get("expected")
    if expected is not None and not isinstance(expected, str):
        expected = json.dumps(expected)
    tags = row.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.replace("|", ",").split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors["tags"] = ["a list of strings (or comma-separated)"]
    segment = row.get("segment") or ""
    if not isinstance(segment, str) or len(segment) > 100:
        errors["segment"] = ["a string of at most 100 characters"]
    return {"external_id": str(row.get("id") or "")[:200], "messages": messages, "params": params,
            "expected": expected or None, "json_schema": schema, "tags": tags, "segment": segment}, errors


def parse_cases(content: str | bytes, *, fmt: str) -> list[dict[str, Any]]:
    """Cases from JSONL (one object a line) or CSV (a header row: id, input, system, expected, json_schema,
    tags, segment, messages, params). DatasetInvalid names each bad line and field."""
    try:
        text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    except UnicodeDecodeError as error:  # an uploaded binary file: the caller's error, not a server one
        raise DatasetInvalid({"file": [f"must be UTF-8 text: {error}"]}) from error
    if "\x00" in text or "\\u0000" in text:  # PostgreSQL stores no NUL (a JSONL line may escape one)
        raise DatasetInvalid({"content": [NUL_MESSAGE]})
    rows: list[tuple[int, Any]] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except ValueError as error:
                rows.append((number, f"not JSON: {error}"))
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = [(number, {k.strip(): v for k, v in row.items() if k}) for number, row in enumerate(reader, 2)]
    else:
        raise DatasetInvalid({"format": ["jsonl or csv"]})
    cases, errors = [], {}
    for number, row in rows:
        if not isinstance(row, dict):
            errors[f"line {number}"] = {"non_field_errors": [row if isinstance(row, str) else "must be an object"]}
            continue
        case, problems = _case_from(row)
        if problems:
            errors[f"line {number}"] = problems
        cases.append(case)
    if errors:
        raise DatasetInvalid(errors)
    if not cases:
        raise DatasetInvalid({"file": ["no cases"]})
    return cases


@transaction.atomic
def dataset_import(*, actor: str, name: str, content: str | bytes, fmt: str, description: str = "",
                   replace: bool = False) -> tuple[EvaluationDataset, int]:
    """Create the dataset (or add to it, or with `replace` swap its cases) from a JSONL or CSV file."""
    cases = parse_cases(content, fmt=fmt)
    dataset, created = EvaluationDataset.objects.select_for_update().get_or_create(
        name=name, defaults={"description": description, "created_by": actor})
    if replace:
        dataset.cases.all().delete()
    start = (dataset.cases.order_by("-order").values_list("order", flat=True).first() or -1) + 1
    EvaluationCase.objects.bulk_create(
        [EvaluationCase(dataset=dataset, order=start + i, **case) for i, case in enumerate(cases)], batch_size=500)
    audit_record(actor=actor, action="dataset.imported", after={
        "dataset": name, "cases": len(cases), "format": fmt, "replaced": replace, "created": created})
    return dataset, len(cases)


# --- runs -------------------------------------------------------------------------------------------------


def plan_criteria(plan: MigrationPlan | None) -> Criteria:
    if plan is None:
        return Criteria()
    return Criteria(min_accuracy=plan.min_accuracy, max_p95_ms=plan.max_p95_ms,
                    max_cost_per_request=plan.max_cost_per_request)


def evaluation_run_create(*, actor: str, dataset: EvaluationDataset, plan: MigrationPlan | None = None,
                          baseline: ModelEndpoint | None = None, candidate: ModelEndpoint | None = None,
                          repetitions: int = 3, comparator: str = "normalised", accuracy_threshold: float | None = None,
                          judge_endpoint: ModelEndpoint | None = None,
                          schedule: EvaluationSchedule | None = None) -> EvaluationRun:
    """Queue a run of baseline and candidate (the plan's, unless given) over the dataset; it starts on commit.

    With the judge comparator the judge is `judge_endpoint` or the plan's, with the plan's rubric, and the
    accuracy threshold defaults to 0.5 (judged at least as good as the reference); SettingsInvalid names the
    field when no judge is configured, its model is a moving alias, or the threshold counts ties as misses."""
    from .. import tasks

    if comparator != JUDGE:
        get_comparator(comparator)  # refuse an unknown name now, not in the worker
    if plan is None and (baseline is None or candidate is None):
        raise ValueError("a run without a plan needs a baseline and a candidate")
    judge = judge_endpoint or (plan.judge_endpoint if plan is not None and comparator == JUDGE else None)
    if accuracy_threshold is None:
        accuracy_threshold = JUDGE_MAX_THRESHOLD if comparator == JUDGE else DEFAULT_ACCURACY_THRESHOLD
    problems = judge_settings_problems(comparator=comparator, judge_model=judge.model if judge else None,
                                       threshold=accuracy_threshold, threshold_field="accuracy_threshold")
    if problems:
        raise SettingsInvalid(problems)
    if comparator != JUDGE:
        judge = None
    with transaction.atomic():
        run = EvaluationRun.objects.create(
            plan=plan, schedule=schedule, dataset=dataset, baseline=baseline or plan.baseline,
            candidate=candidate or plan.candidate, repetitions=repetitions, comparator=comparator,
            judge_endpoint=judge, judge_rubric=plan.judge_rubric if plan is not None and judge else "",
            accuracy_threshold=accuracy_threshold, criteria=asdict(plan_criteria(plan)), created_by=actor,
            baseline_prompt_adapter=plan.baseline_prompt_adapter if plan and baseline is None else "",
            candidate_prompt_adapter=plan.candidate_prompt_adapter if plan and candidate is None else "",
        )
        audit_record(actor=actor, action="evaluation.requested", plan=plan, after={
            "run": run.pk, "dataset": dataset.name, "baseline": run.baseline.name, "candidate": run.candidate.name,
            "repetitions": repetitions})
        transaction.on_commit(lambda: tasks.evaluation_run_execute.delay(run.pk))
    return run


@dataclass(frozen=True)
class _Work:
    case: EvaluationCase
    arm: str
    repetition: int


def _execute_one(run: EvaluationRun, work: _Work, semaphores: dict[str, threading.Semaphore]) -> EvaluationResult:
    endpoint = run.baseline if work.arm == Arm.BASELINE else run.candidate
    spec = endpoint.spec()
    adapter = run.baseline_prompt_adapter if work.arm == Arm.BASELINE else run.candidate_prompt_adapter
    case = work.case
    with semaphores[spec.provider.value]:
        try:
            outcome = offline_call(spec, chat_request(case.messages, case.params), adapter=adapter,
                                   task=case.params.get("task"), max_wait=settings.CUTOVER_OFFLINE_MAX_WAIT_SECONDS * 6)
        except RateLimited as limited:
            return EvaluationResult(run=run, case=case, arm=work.arm, repetition=work.repetition, ok=False,
                                    error_type="rate_limited_locally", reason=str(limited))
    result = EvaluationResult(run=run, case=case, arm=work.arm, repetition=work.repetition, ok=outcome.ok)
    if not outcome.ok:
        result.error_type, result.reason = outcome.error.kind.value, str(outcome.error)[:1000]
        result.format_ok = False if case.json_schema or case.params.get("response_format") == "json" else None
        return result
    c = outcome.completion
    result.text, result.latency_ms, result.cost = c.text, c.latency_ms, c.cost_usd
    result.input_tokens, result.output_tokens = c.input_tokens, c.output_tokens
    result.refusal = looks_like_refusal(c.text)
    reasons = []
    if case.expected is not None:
        score, result.judge_cost = _compare(run, c.text, case.expected, case, semaphores)
        result.accuracy = _passed(run, score)
        reasons.append(f"accuracy: {score.reason}")
    if case.json_schema:
        schema_score = json_schema_valid(c.text, case.json_schema)
        result.format_ok = schema_score.value == 1.0
        reasons.append(f"format: {schema_score.reason}")
    elif case.params.get("response_format") == "json":
        result.format_ok = normalize_output(c.text, "json").format_ok
    result.reason = "; ".join(reasons)[:2000]
    return result


def _compare(run: EvaluationRun, text: str, reference: str, case: EvaluationCase,
             semaphores: dict[str, threading.Semaphore]) -> tuple[Score, float]:
    """The run's comparator's Score of `text` against `reference`, and what the judge spent on it. The judge is
    called like the arms: a token from its provider's bucket, at most the in-flight bound per provider."""
    if run.comparator != JUDGE:
        return get_comparator(run.comparator)(text, reference), 0.0
    judge = Judge(run.judge_endpoint, run.judge_rubric, max_wait=settings.CUTOVER_OFFLINE_MAX_WAIT_SECONDS * 6)
    with semaphores[judge.spec.provider.value] if judge.spec else contextlib.nullcontext():
        score = judge(text, reference, request_text=judge_request_text(case.messages, case.params))
    return score, judge.cost_usd


def _passed(run: EvaluationRun, score: Score) -> float | None:
    """1 when the score reaches the run's threshold, else 0; None when the judge gave no verdict (left out)."""
    if not judged(score):
        return None
    return 1.0 if score.value >= run.accuracy_threshold else 0.0


def _claim_run(run_id: int) -> EvaluationRun | None:
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state not in (EvaluationRunState.QUEUED, EvaluationRunState.RUNNING):
            return None
        if run.state == EvaluationRunState.RUNNING and run.started_at and \
                timezone.now() - run.started_at < timedelta(minutes=30):
            return None  # someone is on it (a redelivered task after a worker died resumes it later)
        run.state, run.started_at = EvaluationRunState.RUNNING, timezone.now()
        run.save(update_fields=["state", "started_at"])
    return run


def evaluation_run_execute(*, run_id: int) -> EvaluationRun | None:
    """Make the run's calls (those not stored yet, so a resumed run repeats none), then report."""
    run = _claim_run(run_id)
    if run is None:
        return None
    run = EvaluationRun.objects.select_related("baseline", "candidate", "plan", "dataset", "schedule",
                                               "judge_endpoint").get(pk=run_id)
    cases = list(run.dataset.cases.order_by("order"))
    done = set(run.results.values_list("case_id", "arm", "repetition"))
    work = [_Work(case, arm, rep) for rep in range(run.repetitions) for case in cases
            for arm in (Arm.BASELINE, Arm.CANDIDATE) if (case.pk, arm, rep) not in done]
    in_flight = settings.CUTOVER_EVALUATION_MAX_IN_FLIGHT
    semaphores: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(in_flight))
    judge = [run.judge_endpoint.spec()] if run.judge_endpoint else []
    for spec in (run.baseline.spec(), run.candidate.spec(), *judge):
        semaphores[spec.provider.value]  # noqa: B018 - created here, not racily in the threads
    try:
        pending_rows: list[EvaluationResult] = []
        with ThreadPoolExecutor(max_workers=in_flight * 2) as pool:
            futures = {pool.submit(_execute_one, run, item, semaphores) for item in work}
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                pending_rows += [future.result() for future in finished]
                if len(pending_rows) >= 200 or not futures:
                    EvaluationResult.objects.bulk_create(pending_rows, ignore_conflicts=True)
                    pending_rows = []
        return evaluation_run_finish(run=run, semaphores=semaphores)
    except Exception as error:
        EvaluationRun.objects.filter(pk=run.pk).update(state=EvaluationRunState.FAILED, error=repr(error)[:2000],
                                                       finished_at=timezone.now())
        raise


def _attempts(results: list[EvaluationResult], segments: dict[int, str]) -> list[Attempt]:
    return [Attempt(case=r.case_id, repetition=r.repetition, ok=r.ok, latency_ms=r.latency_ms, cost=r.cost,
                    segment=segments.get(r.case_id, ""), accuracy=r.accuracy, format_ok=r.format_ok,
                    agreement=r.agreement) for r in results]


def evaluation_run_finish(*, run: EvaluationRun,
                          semaphores: dict[str, threading.Semaphore] | None = None) -> EvaluationRun:
    """Score agreement (candidate vs the baseline's answer in the same repetition), build the report and the
    recommendation, and for a scheduled run compare with the schedule's previous run.

    With the judge, agreement is 1 when the candidate's answer is judged at least as good as the baseline's
    (score ≥ accuracy_threshold), else 0; answers judged already (a resumed run) are not judged again."""
    results = list(run.results.all())
    baseline_text = {(r.case_id, r.repetition): r.text for r in results if r.arm == Arm.BASELINE and r.ok}
    pairs = [(r, baseline_text[r.case_id, r.repetition]) for r in results
             if r.arm == Arm.CANDIDATE and r.ok and (r.case_id, r.repetition) in baseline_text]
    if run.comparator == JUDGE:
        changed = _judge_agreement(run, [(r, reference) for r, reference in pairs if r.agreement is None],
                                   semaphores)
        EvaluationResult.objects.bulk_update(changed, ["agreement", "judge_cost", "reason"], batch_size=500)
    else:
        comparator = get_comparator(run.comparator)
        for r, reference in pairs:
            r.agreement = comparator(r.text, reference).value
        EvaluationResult.objects.bulk_update([r for r, _ in pairs], ["agreement"], batch_size=500)
    segments = dict(run.dataset.cases.values_list("pk", "segment"))
    report = evaluation_report(_attempts([r for r in results if r.arm == Arm.BASELINE], segments),
                               _attempts([r for r in results if r.arm == Arm.CANDIDATE], segments))
    criteria = Criteria(**run.criteria) if run.criteria else Criteria()
    report["recommendation"] = recommend(report["arms"]["candidate"], criteria)
    report["criteria"] = asdict(criteria)
    report["cases"], report["repetitions"] = len(segments), run.repetitions
    judge_cost = sum(r.judge_cost for r in results)
    if run.comparator == JUDGE:  # answers the judge gave no verdict on are left out of accuracy and agreement
        expected = set(run.dataset.cases.filter(expected__isnull=False).values_list("pk", flat=True))
        report["judge"] = {
            "model": run.judge_endpoint.model if run.judge_endpoint else None, "cost_total": judge_cost,
            "no_verdict": sum(r.ok and r.case_id in expected and r.accuracy is None for r in results)
            + sum(r.agreement is None for r, _ in pairs)}
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().get(pk=run.pk)
        run.report = report
        run.passed = report["recommendation"]["passed"]
        run.cost_total = (report["arms"]["baseline"]["cost_total"] + report["arms"]["candidate"]["cost_total"]
                          + judge_cost)
        run.state, run.finished_at = EvaluationRunState.COMPLETED, timezone.now()
        run.save(update_fields=["report", "passed", "cost_total", "state", "finished_at"])
        audit_record(actor="system:evaluation", action="evaluation.completed", plan=run.plan, after={
            "run": run.pk, "passed": run.passed, "summary": report["recommendation"]["summary"]})
        if run.schedule_id:
            _check_regression(run)
    return run


def _judge_agreement(run: EvaluationRun, pairs: list[tuple[EvaluationResult, str]],
                     semaphores: dict[str, threading.Semaphore] | None) -> list[EvaluationResult]:
    """Judge each candidate answer against the baseline's, in parallel within the per-provider bound."""
    if not pairs:
        return []
    run.judge_endpoint  # noqa: B018 - loaded here, not in the threads
    in_flight = settings.CUTOVER_EVALUATION_MAX_IN_FLIGHT
    semaphores = semaphores or defaultdict(lambda: threading.Semaphore(in_flight))
    if run.judge_endpoint is not None:
        semaphores[run.judge_endpoint.provider]  # noqa: B018
    cases = {case.pk: case for case in run.dataset.cases.filter(pk__in={r.case_id for r, _ in pairs})}

    def judge_one(pair: tuple[EvaluationResult, str]) -> EvaluationResult:
        result, reference = pair
        score, cost = _compare(run, result.text, reference, cases[result.case_id], semaphores)
        result.judge_cost += cost
        result.agreement = _passed(run, score)
        result.reason = "; ".join(filter(None, [result.reason, f"agreement: {score.reason}"]))[:2000]
        return result

    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        return list(pool.map(judge_one, pairs))


def _check_regression(run: EvaluationRun) -> None:
    previous = (EvaluationRun.objects.filter(schedule_id=run.schedule_id, state=EvaluationRunState.COMPLETED)
                .exclude(pk=run.pk).order_by("-finished_at").first())
    if previous is None:
        return
    findings = regression(previous.report["arms"]["candidate"], run.report["arms"]["candidate"])
    run.report["regression"] = {"against_run": previous.pk, "findings": findings}
    run.save(update_fields=["report"])
    if findings and run.plan_id:
        _alert_regression(run, findings)


def _alert_regression(run: EvaluationRun, findings: list[str]) -> Alert:
    from .notifications import alert_notify

    now = timezone.now()
    summary = f"{REGRESSION_ALERT} {run.plan.key}: scheduled evaluation {run.schedule.name}: " + "; ".join(findings)
    alert = Alert.objects.filter(plan=run.plan, name=REGRESSION_ALERT, state=AlertState.FIRING).first()
    if alert is not None:
        alert.summary, alert.last_seen = summary, now
        alert.evidence = {"run": run.pk, "findings": findings}
        alert.save(update_fields=["summary", "last_seen", "evidence"])
        return alert
    alert = Alert.objects.create(
        plan=run.plan, name=REGRESSION_ALERT, severity=Severity.WARNING, action="alert",
        dedup_key=f"cutover/{run.plan.key}/{REGRESSION_ALERT}/{uuid.uuid4().hex[:12]}", summary=summary,
        evidence={"run": run.pk, "findings": findings}, first_seen=now, last_seen=now,
    )
    alert_notify(alert=alert, event="trigger")
    return alert


def evaluation_schedules_tick(*, now: datetime | None = None) -> list[EvaluationRun]:
    """Start a run for every enabled schedule that is due; each schedule's next time moves on under its row
    lock, so two beats (or a tick run twice) start one run."""
    now = now or timezone.now()
    started = []
    due = EvaluationSchedule.objects.filter(enabled=True).exclude(next_run_at__gt=now).values_list("pk", flat=True)
    for pk in due:
        with transaction.atomic():
            schedule = EvaluationSchedule.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if schedule is None or (schedule.next_run_at and schedule.next_run_at > now) or not schedule.enabled:
                continue
            schedule.next_run_at = now + timedelta(seconds=schedule.interval_seconds)
            schedule.save(update_fields=["next_run_at"])
            started.append(evaluation_run_create(
                actor=f"system:schedule:{schedule.name}", dataset=schedule.dataset, plan=schedule.plan,
                baseline=schedule.baseline, candidate=schedule.candidate, repetitions=schedule.repetitions,
                schedule=schedule))
    return started


PLAN_QUALITY_FIELDS = QUALITY_FIELDS


def plan_quality_settings_update(*, actor: str, plan: MigrationPlan, reason: str = "", **fields: Any) -> MigrationPlan:
    """Set a plan's evaluation and shadow settings (success criteria, thresholds): a plan edit limited to
    those fields, so it is validated and audited like any other."""
    unknown = set(fields) - set(QUALITY_FIELDS)
    if unknown:
        raise TypeError(f"unknown quality settings: {sorted(unknown)}")
    if fields.get("shadow_comparator", JUDGE) != JUDGE:
        get_comparator(fields["shadow_comparator"])
    merged = {name: fields.get(name, getattr(plan, name)) for name in (
        "shadow_comparator", "judge_endpoint", "shadow_agreement_threshold")}
    problems = judge_settings_problems(
        comparator=merged["shadow_comparator"], threshold=merged["shadow_agreement_threshold"],
        judge_model=merged["judge_endpoint"].model if merged["judge_endpoint"] else None,
        threshold_field="shadow_agreement_threshold")
    if problems:
        raise SettingsInvalid(problems)
    return plan_update(actor=actor, plan=plan, reason=reason, **fields)


def plan_quality_settings(plan: MigrationPlan) -> dict[str, Any]:
    """The plan's evaluation and shadow settings as the API shows them (the judge endpoint by name)."""
    values = {name: getattr(plan, name) for name in QUALITY_FIELDS}
    values["judge_endpoint"] = plan.judge_endpoint.name if plan.judge_endpoint else None
    return values
