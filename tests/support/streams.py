"""Synthetic per-request event streams, shaped like what the SDK reports."""

import math
import random
import uuid
from datetime import UTC, datetime


def lognormal_sigma(median: float, p95: float) -> float:
    return math.log(p95 / median) / 1.6448536269514722


def request_events(*, plan: str, arm: str, count: int, rng: random.Random, error_rate: float = 0.01,
                   latency_median_ms: float = 800.0, latency_p95_ms: float = 2000.0,
                   ts: datetime | None = None) -> list[dict]:
    sigma = lognormal_sigma(latency_median_ms, latency_p95_ms)
    stamp = (ts or datetime.now(UTC)).isoformat()
    events = []
    for _ in range(count):
        failed = rng.random() < error_rate
        events.append({
            "id": str(uuid.uuid4()), "plan": plan, "arm": arm, "ts": stamp,
            "latency_ms": round(rng.lognormvariate(math.log(latency_median_ms), sigma), 2),
            "ttft_ms": round(rng.uniform(80, 200), 2), "outcome": "error" if failed else "ok",
            "error_type": "server_error" if failed else None, "input_tokens": 400, "output_tokens": 100,
            "retries": 0, "fell_back": False, "format_ok": True, "refusal": False, "segment": "general",
        })
    return events


def feedback(*, plan: str, arm: str, count: int, rng: random.Random, mean_score: float) -> list[dict]:
    """Scores in [0, 1] around `mean_score` (a beta distribution with that mean)."""
    concentration = 8.0
    alpha, beta = mean_score * concentration, (1 - mean_score) * concentration
    return [{"request_id": str(uuid.uuid4()), "plan": plan, "arm": arm,
             "score": round(rng.betavariate(alpha, beta), 4), "task_completed": rng.random() < mean_score}
            for _ in range(count)]


def batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
