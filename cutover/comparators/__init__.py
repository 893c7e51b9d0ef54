"""Response comparators shared by the control plane's workers and the SDK: each scores a candidate answer
against a reference (the baseline's answer or an expected answer) as a Score in [0, 1] with a reason.

1.0 means "the same" (or, for the judge, "the candidate is better"); 0.0 "nothing alike". Every comparator
is a pure function of its inputs except the LLM judge, which calls a pinned model through the provider layer.
"""

from cutover.comparators.base import Comparator, Score
from cutover.comparators.json_compare import json_equal, json_schema_valid
from cutover.comparators.judge import JudgeComparator, JudgeVerdict, parse_verdict
from cutover.comparators.text import (
    exact_match,
    length_ratio,
    normalise_text,
    normalised_match,
    refusal_match,
    token_f1,
    tokens,
)

REGISTRY: dict[str, Comparator] = {
    "exact": exact_match,
    "normalised": normalised_match,
    "token_f1": token_f1,
    "json_equal": json_equal,
    "refusal": refusal_match,
    "length_ratio": length_ratio,
}


def get_comparator(name: str) -> Comparator:
    """A reference-based comparator by name (the judge needs an endpoint, so it is built, not looked up)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no comparator {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


__all__ = [
    "REGISTRY", "Comparator", "JudgeComparator", "JudgeVerdict", "Score", "exact_match", "get_comparator",
    "json_equal", "json_schema_valid", "length_ratio", "normalise_text", "normalised_match", "parse_verdict",
    "refusal_match", "token_f1", "tokens",
]
