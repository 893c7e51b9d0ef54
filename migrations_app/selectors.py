"""Reads: the SDK config document, SDK key look-ups, plan listings."""

import hashlib
import logging
import math
from dataclasses import dataclass, fields
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from .domain.lifecycle import State
from .domain.rules import Metric
from .domain.statistics import ArmWindow, metric_samples, metric_value
from .models import Arm, Environment, MetricRollup, MigrationPlan, ModelEndpoint, SDKKey

logger = logging.getLogger("migrations_app.cache")

# Plans an SDK must know about: every one that has left the drawing board.
_UNPUBLISHED_STATES = (State.DRAFT.value,)


def _endpoint_document(endpoint: ModelEndpoint, prompt_adapter: str) -> dict:
    # The *name* of the key's environment variable is not a secret; the key itself never gets here.
    return {
        "name": endpoint.name,
        "provider": endpoint.provider,
        "model": endpoint.model,
        "base_url": endpoint.base_url,
        "api_key_env": endpoint.api_key_env,
        "params": endpoint.default_params,
        "prompt_adapter": prompt_adapter or None,
        "context_window": endpoint.context_window,
        "input_price_per_mtok": float(endpoint.input_price_per_mtok),
        "output_price_per_mtok": float(endpoint.output_price_per_mtok),
    }


def sdk_config_document(*, environment_id: int) -> dict:
    environment = Environment.objects.get(pk=environment_id)
    plans = (
        MigrationPlan.objects.filter(environment_id=environment_id)
        .exclude(state__in=_UNPUBLISHED_STATES)
        .select_related("baseline", "candidate")
        .order_by("key")
    )
    return {
        "environment": environment.name,
        "version": environment.config_version,
        "plans": [
            {
                "key": plan.key,
                "state": plan.state,
                "candidate_percent": plan.candidate_percent,
                "rollback": plan.rollback,
                # Mirroring is the shadow phase's work; later phases compare live traffic instead.
                "shadow_sample_rate": plan.shadow_sample_rate if plan.state == State.SHADOWING else 0.0,
                "salt": plan.salt,
                "version": plan.config_version,
                # A completed migration no longer keeps the baseline as a fallback.
                "baseline": None if plan.state == State.COMPLETED
                else _endpoint_document(plan.baseline, plan.baseline_prompt_adapter),
                "candidate": _endpoint_document(plan.candidate, plan.candidate_prompt_adapter),
            }
            for plan in plans
        ],
    }


@dataclass(frozen=True)
class SDKPrincipal:
    """Who an SDK request speaks for: one key of one environment, with its scopes."""

    key_id: int
    prefix: str
    environment_id: int
    environment: str
    scopes: tuple[str, ...]
    revoked: bool

    # DRF and Django look for these on request.user.
    is_authenticated = True
    is_staff = False
    is_active = True

    def has_scope(self, scope: str) -> bool:
        return not self.revoked and scope in self.scopes


def hash_sdk_secret(secret: str) -> str:
    # SDK secrets are 256-bit random tokens, so a fast hash is safe (no dictionary to attack) and keeps
    # authentication off the hot path's CPU budget.
    return hashlib.sha256(secret.encode()).hexdigest()


def sdk_key_cache_key(hashed_secret: str) -> str:
    return f"cutover:sdkkey:{hashed_secret}"


def sdk_principal_from_key(key: SDKKey) -> SDKPrincipal:
    return SDKPrincipal(
        key_id=key.pk, prefix=key.prefix, environment_id=key.environment_id, environment=key.environment.name,
        scopes=tuple(key.scopes), revoked=key.revoked,
    )


_UNKNOWN = "unknown"


def cache_get_or_none(key: str):
    """The cached value, or None when it is missing or the cache is down: the cache only saves SQL on the SDK
    path, so a Redis outage (or restart) must fall through to the database, never fail the request."""
    try:
        return cache.get(key)
    except Exception as error:  # redis-py's and the file cache's errors share no base class
        logger.warning("cache unavailable, reading %s from the database: %s: %s", key, type(error).__name__, error)
        return None


def cache_set_quietly(key: str, value, timeout: float) -> bool:
    """Store in the cache; False (logged) when the cache is down."""
    try:
        cache.set(key, value, timeout)
    except Exception as error:
        logger.warning("cache unavailable, %s not stored: %s: %s", key, type(error).__name__, error)
        return False
    return True


def sdk_principal_for_secret(secret: str) -> SDKPrincipal | None:
    """The principal for a presented secret, or None for an unknown one. Cached, including misses (a new
    key has a new hash, so a cached miss can never hide it). A miss is filled while holding the key's row
    lock, which revocation holds until it commits, so a slow reader cannot cache a revoked key as valid."""
    hashed = hash_sdk_secret(secret)
    cached = cache_get_or_none(sdk_key_cache_key(hashed))
    if cached is not None:
        return sdk_principal_from_cache_entry(cached)
    with transaction.atomic():
        keys = SDKKey.objects.select_for_update(of=("self",)).select_related("environment")
        key = keys.filter(hashed_secret=hashed).first()
        principal = sdk_principal_from_key(key) if key else None
        entry = _UNKNOWN if principal is None else sdk_principal_cache_entry(principal)
        cache_set_quietly(sdk_key_cache_key(hashed), entry, settings.CUTOVER_CONFIG_CACHE_SECONDS)
    return principal


def sdk_principal_cached(secret: str) -> SDKPrincipal | None:
    """The principal for a known secret if the cache holds it; None for a miss, an unknown secret or a cache
    that is down (callers that need certainty use sdk_principal_for_secret)."""
    return sdk_principal_from_cache_entry(cache_get_or_none(sdk_key_cache_key(hash_sdk_secret(secret))))


def sdk_principal_from_cache_entry(entry) -> SDKPrincipal | None:
    return None if entry is None or entry == _UNKNOWN else SDKPrincipal(*entry)


def sdk_principal_cache_entry(principal: SDKPrincipal) -> tuple:
    return (principal.key_id, principal.prefix, principal.environment_id, principal.environment,
            principal.scopes, principal.revoked)


def arm_windows(*, plan_id: int, since: datetime | None = None, until: datetime | None = None,
                step_serial: int | None = None) -> dict[str, ArmWindow]:
    """Each arm's sufficient statistics over the minutes from `since` (its minute included) to `until`,
    summed from the per-minute rollups (never from raw events); with `step_serial`, only data that arrived
    during that step of the plan."""
    rollups = MetricRollup.objects.filter(plan_id=plan_id)
    if since is not None:
        rollups = rollups.filter(minute__gte=since.replace(second=0, microsecond=0))
    if step_serial is not None:
        rollups = rollups.filter(step_serial=step_serial)
    if until is not None:
        rollups = rollups.filter(minute__lte=until)
    windows = {arm: ArmWindow.empty() for arm in Arm.values}
    for row in rollups:
        windows[row.arm] = windows[row.arm] + rollup_window(row)
    return windows


def current_step_windows(*, plan: MigrationPlan, now: datetime) -> dict[str, ArmWindow]:
    """Both arms over the plan's current step: the window every health rule and scheduler decision reads.

    Once the candidate serves everything (100 %, optimizing) the baseline serves nothing, so it is judged
    against the baseline as last seen: the latest step in which the baseline served traffic."""
    windows = arm_windows(plan_id=plan.pk, until=now, step_serial=plan.step_serial)
    if plan.candidate_percent >= 100:
        last_served = (MetricRollup.objects.filter(plan_id=plan.pk, arm=Arm.BASELINE, requests__gt=0,
                                                   step_serial__lt=plan.step_serial)
                       .order_by("-step_serial").values_list("step_serial", flat=True).first())
        if last_served is not None:
            windows["baseline"] = arm_windows(plan_id=plan.pk, step_serial=last_served)["baseline"]
    return windows


def rollup_window(row: MetricRollup) -> ArmWindow:
    return ArmWindow(**{name: getattr(row, name) for name in _WINDOW_SCALARS},
                     latency_hist=tuple(row.latency_hist), ttft_hist=tuple(row.ttft_hist))


_WINDOW_SCALARS = tuple(f.name for f in fields(ArmWindow) if f.name not in ("latency_hist", "ttft_hist"))


def plan_report(*, plan: MigrationPlan, now: datetime) -> dict:
    """Per-arm metrics over the plan's current window and, for each rule, its statistic and verdict."""
    from .services.health import plan_rule_verdicts  # reads only; lives beside the checker that acts on it

    windows = current_step_windows(plan=plan, now=now)
    return {
        "plan": plan.key,
        "state": plan.state,
        "candidate_percent": plan.candidate_percent,
        "window": {"since": plan.step_started_at, "until": now},
        "arms": {
            arm: {
                "requests": window.requests,
                "cost_total": window.cost_sum,
                "metrics": {metric.value: _finite(metric_value(window, metric)) for metric in Metric},
                "samples": {metric.value: metric_samples(window, metric) for metric in Metric},
            }
            for arm, window in windows.items()
        },
        "rules": [
            {"id": rule.pk, "action": rule.action, "severity": rule.severity, **verdict.as_dict()}
            for rule, verdict in plan_rule_verdicts(plan=plan, now=now)
        ],
    }


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


# --- evaluation and shadow (services/evaluation.py, services/shadow.py) --------------------------------------


def evaluation_gate(*, plan: MigrationPlan) -> str:
    """May the plan leave evaluation? "not_required" when it does not need a passing run; otherwise the latest
    completed run decides ("passed" / "failed"); none completed yet → "pending"."""
    from .models import EvaluationRun, EvaluationRunState

    if not plan.requires_evaluation_pass:
        return "not_required"
    latest = (EvaluationRun.objects.filter(plan=plan, state=EvaluationRunState.COMPLETED)
              .order_by("-finished_at", "-id").values_list("passed", flat=True).first())
    if latest is None:
        return "pending"
    return "passed" if latest else "failed"


@dataclass(frozen=True)
class ShadowSummary:
    """The shadow phase's evidence for a plan. Rates are shares of comparisons; `disagreement_above_noise` is
    the share of prompts on which the candidate disagrees beyond the baseline's own variability, with an
    always-valid `interval` (domain/comparisons.py). `verdict`: "pass" when at least shadow_min_comparisons
    were made and the interval's upper end is within shadow_max_disagreement, "fail" when its lower end is
    above it, else "pending"."""

    comparisons: int
    noise_floor: float | None
    disagreement: float | None
    disagreement_above_noise: float | None
    interval: tuple[float, float] | None
    per_segment: dict
    noise_samples: int = 0
    candidate_failures: int = 0
    mean_score: float | None = None
    latency_difference_ms: dict | None = None
    latency_ratio: float | None = None
    cost_difference: dict | None = None
    cost_ratio: float | None = None
    shadow_cost: float = 0.0
    verdict: str = "pending"
    worst: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self) | {"interval": list(self.interval) if self.interval else None, "worst": list(self.worst)}


_PAIR_FIELDS = ("disagree", "score", "noise_disagree", "segment", "candidate_latency_ms",
                "sample__baseline_latency_ms", "candidate_cost", "sample__baseline_cost", "candidate_ok",
                "rerun_cost", "judge_cost")


def _shadow_verdict(plan: MigrationPlan, comparisons: int, interval: tuple[float, float] | None) -> str:
    if comparisons < plan.shadow_min_comparisons or interval is None:
        return "pending"
    if interval[1] <= plan.shadow_max_disagreement:
        return "pass"
    if interval[0] > plan.shadow_max_disagreement:
        return "fail"
    return "pending"


def shadow_summary(*, plan: MigrationPlan, since: datetime | None = None, worst: int = 10) -> ShadowSummary:
    from .domain.comparisons import DEFAULT_TAU, Pair, paired_report
    from .models import ShadowComparison

    rows = ShadowComparison.objects.filter(plan=plan)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    pairs, failures, spend = [], 0, 0.0
    for (disagree, score, noise, segment, lat_c, lat_b, cost_c, cost_b, ok, rerun_cost, judge_cost) in \
            rows.values_list(*_PAIR_FIELDS).iterator(chunk_size=5000):
        failures += not ok
        spend += cost_c + rerun_cost + judge_cost
        pairs.append(Pair(disagree=disagree, score=score, noise_disagree=noise, segment=segment,
                          latency_candidate_ms=lat_c if ok else None, latency_baseline_ms=lat_b,
                          cost_candidate=cost_c if ok else None, cost_baseline=cost_b))
    tau = max(plan.shadow_max_disagreement, DEFAULT_TAU / 5)
    report = paired_report(pairs, tau=tau)
    overall = report.overall
    worst_ids = tuple(rows.order_by("score", "-created_at").values_list("pk", flat=True)[:worst])
    return ShadowSummary(
        comparisons=overall.comparisons, noise_samples=overall.noise_samples,
        noise_floor=overall.noise_floor.value, disagreement=overall.disagreement.value,
        disagreement_above_noise=overall.above_noise.value, interval=overall.above_noise.interval,
        per_segment={name: seg.as_dict() for name, seg in report.per_segment.items()},
        candidate_failures=failures, mean_score=report.score.value,
        latency_difference_ms=report.latency_difference_ms.as_dict(), latency_ratio=report.latency_ratio,
        cost_difference=report.cost_difference.as_dict(), cost_ratio=report.cost_ratio, shadow_cost=round(spend, 9),
        verdict=_shadow_verdict(plan, overall.comparisons, overall.above_noise.interval), worst=worst_ids,
    )


def shadow_comparisons(*, plan: MigrationPlan, segment: str | None = None, max_score: float | None = None,
                       min_score: float | None = None, disagree: bool | None = None):
    from .models import ShadowComparison

    rows = ShadowComparison.objects.filter(plan=plan).select_related("sample", "plan__candidate")
    if segment is not None:
        rows = rows.filter(segment=segment)
    if max_score is not None:
        rows = rows.filter(score__lte=max_score)
    if min_score is not None:
        rows = rows.filter(score__gte=min_score)
    if disagree is not None:
        rows = rows.filter(disagree=disagree)
    return rows.order_by("score", "-created_at", "-id")
