"""JSON comparators: structural equality of two answers, and validity against a JSON Schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cutover.comparators.base import Score
from cutover.providers.normalize import normalize_output

_MISSING = object()


def _parsed(text: str) -> tuple[Any, bool]:
    """(value, format_ok); value is _MISSING when no JSON could be found at all."""
    out = normalize_output(text, "json")
    return (out.value if out.source != "none" else _MISSING), out.format_ok


def _leaves(value: Any, path: str = "$") -> dict[str, Any]:
    """Every leaf by its path; objects by key (order-free), arrays by index (order matters)."""
    if isinstance(value, Mapping):
        if not value:
            return {path: {}}
        out: dict[str, Any] = {}
        for key in value:
            out.update(_leaves(value[key], f"{path}.{key}"))
        return out
    if isinstance(value, list):
        if not value:
            return {path: []}
        out = {}
        for index, item in enumerate(value):
            out.update(_leaves(item, f"{path}[{index}]"))
        return out
    return {path: value}


def _same_leaf(a: Any, b: Any) -> bool:
    # 1 and 1.0 are the same number in JSON; True and 1 are not the same value.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def json_equal(candidate: str, reference: str) -> Score:
    """1 when both parse to the same JSON value (key order and number spelling aside); otherwise the share
    of leaf paths the two agree on (Jaccard), naming the first that differs."""
    c, c_ok = _parsed(candidate)
    r, _ = _parsed(reference)
    if r is _MISSING:
        return Score(0.0, "the reference is not JSON")
    if c is _MISSING:
        return Score(0.0, "the candidate is not JSON")
    details = {"candidate_format_ok": c_ok}
    lc, lr = _leaves(c), _leaves(r)
    paths = sorted(lc.keys() | lr.keys())
    agree = [p for p in paths if p in lc and p in lr and _same_leaf(lc[p], lr[p])]
    if len(agree) == len(paths):
        return Score(1.0, "the same JSON value" + ("" if c_ok else " (the candidate's was wrapped in prose)"), details)
    first = next(p for p in paths if p not in agree)
    if first not in lc:
        why = f"{first} is missing from the candidate"
    elif first not in lr:
        why = f"{first} is not in the reference"
    else:
        why = f"{first}: {lc[first]!r} vs {lr[first]!r}"
    share = len(agree) / len(paths)
    return Score(round(share, 6), f"{len(agree)} of {len(paths)} fields agree; {why}", details | {"first": first})


def json_schema_valid(text: str, schema: Mapping[str, Any]) -> Score:
    """1 when the answer is JSON, where a strict consumer finds it, and valid against `schema`."""
    try:
        import jsonschema
    except ImportError as error:  # pragma: no cover - jsonschema is a dependency; SDK users may lack it
        raise RuntimeError("json_schema_valid needs the jsonschema package (pip install 'jsonschema>=4.18')") from error
    value, format_ok = _parsed(text)
    if value is _MISSING:
        return Score(0.0, "not JSON", {"format_ok": False})
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValueError(f"invalid JSON Schema: {error.message}") from error
    errors = sorted(validator_class(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
        return Score(0.0, f"{len(errors)} schema violation(s); {where}: {first.message}", {"format_ok": False})
    if not format_ok:
        return Score(0.0, "valid JSON, but embedded in prose (a strict parser would fail)", {"format_ok": False})
    return Score(1.0, "valid against the schema", {"format_ok": True})
