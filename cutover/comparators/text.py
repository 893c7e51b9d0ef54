"""Text comparators: exact and normalised match, ROUGE-L-like token F1, refusal agreement, length ratio."""

from __future__ import annotations

import re
import unicodedata

from cutover.comparators.base import Score
from cutover.providers.normalize import looks_like_refusal, normalize_output

_TOKEN = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def normalise_text(text: str) -> str:
    """The answer without its wrapping (fences, <answer> tags, <thinking>), case, accents' composition,
    punctuation and runs of whitespace — what two models can differ in while meaning the same."""
    answer = normalize_output(text).text
    answer = unicodedata.normalize("NFKC", answer).casefold()
    answer = _PUNCTUATION.sub(" ", answer)
    return _SPACE.sub(" ", answer).strip()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", normalize_output(text).text).casefold())


def exact_match(candidate: str, reference: str) -> Score:
    if candidate == reference:
        return Score(1.0, "identical")
    if candidate.strip() == reference.strip():
        return Score(1.0, "identical but for surrounding whitespace")
    return Score(0.0, _first_difference(candidate, reference))


def normalised_match(candidate: str, reference: str) -> Score:
    a, b = normalise_text(candidate), normalise_text(reference)
    if a == b:
        return Score(1.0, "the same once case, punctuation, whitespace and wrapping are ignored")
    return Score(0.0, "differs after normalising: " + _first_difference(a, b))


def _first_difference(a: str, b: str) -> str:
    index = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"first difference at character {index}: {a[index:index + 30]!r} vs {b[index:index + 30]!r}"


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


# Answers longer than this (in tokens) are compared on bag-of-words overlap instead of LCS, so one very long
# pair cannot hold a worker for seconds.
MAX_LCS_TOKENS = 2000


def token_f1(candidate: str, reference: str) -> Score:
    """ROUGE-L F1: the longest common token subsequence, as precision (over the candidate) and recall (over
    the reference), combined harmonically. Order matters, case and punctuation do not."""
    c, r = tokens(candidate), tokens(reference)
    if not c and not r:
        return Score(1.0, "both empty")
    if not c or not r:
        return Score(0.0, "candidate is empty" if not c else "reference is empty")
    if len(c) * len(r) > MAX_LCS_TOKENS ** 2:
        common = _bag_overlap(c, r)
        how = "bag-of-words overlap (too long for LCS)"
    else:
        common = lcs_length(c, r)
        how = "longest common subsequence"
    precision, recall = common / len(c), common / len(r)
    f1 = 0.0 if common == 0 else 2 * precision * recall / (precision + recall)
    return Score(round(f1, 6), f"token F1 {f1:.2f} ({how} {common} of {len(c)} candidate / {len(r)} reference "
                               f"tokens)", {"precision": round(precision, 6), "recall": round(recall, 6)})


def _bag_overlap(a: list[str], b: list[str]) -> int:
    from collections import Counter

    return sum((Counter(a) & Counter(b)).values())


def refusal_match(candidate: str, reference: str) -> Score:
    """1 when both answer or both refuse; 0 when exactly one of them refuses."""
    c, r = looks_like_refusal(candidate), looks_like_refusal(reference)
    if c == r:
        return Score(1.0, "both refused" if c else "neither refused", {"candidate_refused": c, "reference_refused": r})
    return Score(0.0, "candidate refused, reference answered" if c else "reference refused, candidate answered",
                 {"candidate_refused": c, "reference_refused": r})


def length_ratio(candidate: str, reference: str) -> Score:
    """The shorter answer's token count over the longer's: 1 when equally long."""
    c, r = len(tokens(candidate)), len(tokens(reference))
    if c == r:
        return Score(1.0, f"both {c} tokens", {"ratio": 1.0})
    ratio = c / r if r else float("inf")
    value = min(c, r) / max(c, r)
    described = f"{ratio:.2f}× as long" if r else "candidate has text, reference is empty"
    return Score(round(value, 6), f"candidate is {described} ({c} vs {r} tokens)",
                 {"ratio": round(ratio, 6) if r else None})
