"""What an alert is called, by the metric whose rule fired (the names of our playbook)."""

from .rules import Metric

ROLLED_BACK = "PLAN_ROLLED_BACK"

ALERT_NAMES = {
    Metric.ERROR_RATE: "ERROR_RATE_HIGH",
    Metric.TIMEOUT_RATE: "TIMEOUT_RATE_HIGH",
    Metric.FALLBACK_RATE: "FALLBACK_RATE_HIGH",
    Metric.LATENCY_P50: "LATENCY_DEGRADED",
    Metric.LATENCY_P95: "LATENCY_DEGRADED",
    Metric.LATENCY_P99: "LATENCY_DEGRADED",
    Metric.TTFT_P95: "LATENCY_DEGRADED",
    Metric.SATISFACTION: "SATISFACTION_DOWN",
    Metric.TASK_COMPLETION: "TASK_COMPLETION_DOWN",
    Metric.COST_PER_REQUEST: "COST_INCREASED",
    Metric.FORMAT_COMPLIANCE: "FORMAT_COMPLIANCE_DOWN",
    Metric.REFUSAL_RATE: "REFUSAL_RATE_HIGH",
}


def alert_name(metric: Metric | str) -> str:
    return ALERT_NAMES[Metric(metric)]
