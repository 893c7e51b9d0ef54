"""The defaults of the migration playbook we follow: what a new plan starts with."""

from dataclasses import dataclass

from .rules import Comparison, Metric, RuleAction, Severity

DAY = 24 * 3600
WEEK = 7 * DAY


@dataclass(frozen=True)
class StepDefault:
    percent: float
    min_hold_seconds: int
    min_samples: int
    needs_approval: bool = False


@dataclass(frozen=True)
class RuleDefault:
    metric: Metric
    comparison: Comparison
    threshold: float
    action: RuleAction
    severity: Severity
    sustained_seconds: int = 300
    min_samples: int = 200


DEFAULT_STEPS = (
    StepDefault(percent=5, min_hold_seconds=WEEK, min_samples=500),
    StepDefault(percent=25, min_hold_seconds=WEEK, min_samples=1000),
    StepDefault(percent=50, min_hold_seconds=WEEK, min_samples=1000),
    StepDefault(percent=100, min_hold_seconds=WEEK, min_samples=1000),
)

DEFAULT_RULES = (
    # Alerts: look closer.
    RuleDefault(Metric.ERROR_RATE, Comparison.RATIO, 1.3, RuleAction.ALERT, Severity.WARNING),
    RuleDefault(Metric.LATENCY_P95, Comparison.RATIO, 1.5, RuleAction.ALERT, Severity.WARNING),
    RuleDefault(Metric.SATISFACTION, Comparison.DELTA, 0.15, RuleAction.ALERT, Severity.WARNING),
    # Rollbacks: the candidate is hurting users.
    RuleDefault(Metric.ERROR_RATE, Comparison.RATIO, 2.0, RuleAction.ROLLBACK, Severity.CRITICAL),
    RuleDefault(Metric.SATISFACTION, Comparison.RATIO, 0.8, RuleAction.ROLLBACK, Severity.CRITICAL),
    RuleDefault(Metric.COST_PER_REQUEST, Comparison.RATIO, 1.5, RuleAction.ROLLBACK, Severity.CRITICAL),
)

DEFAULT_SHADOW_SAMPLE_RATE = 0.1
DEFAULT_EVALUATION_SECONDS = DAY
DEFAULT_SHADOW_SECONDS = WEEK
DEFAULT_FINAL_HOLD_SECONDS = WEEK
DEFAULT_CLEANUP_AFTER_SECONDS = 3 * WEEK
