"""Output normalisation: get the answer out of what a model wrote, and say whether the format held.

Models of different families wrap the same answer differently — ```json fences, <answer> tags,
a friendly sentence first — so comparing a candidate with its baseline needs the answer itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from cutover.providers.types import ResponseFormat

Source = Literal["answer_tag", "json_fence", "raw", "embedded", "none"]

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_OPEN_ANSWER_TAG = re.compile(r"<answer>(.*)\Z", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?```", re.DOTALL)
_THINKING = re.compile(r"<thinking>.*?</thinking>", re.DOTALL | re.IGNORECASE)

_REFUSAL_OPENINGS = (
    "i'm sorry, but i can't", "i am sorry, but i can't", "i'm sorry, but i cannot", "i can't help with",
    "i cannot help with", "i can't assist with", "i cannot assist with", "i'm unable to help",
    "i am unable to help", "i'm not able to help", "i won't be able to help", "i can't provide",
    "i cannot provide", "sorry, i can't",
)


@dataclass(frozen=True, slots=True)
class NormalizedOutput:
    """`text` is the answer without its wrapping; `value` the parsed JSON when JSON was expected.

    `format_ok` says whether the answer was where a strict consumer looks for it: for JSON, a value
    parsed from the raw text, a code fence or <answer> tags; JSON fished out of surrounding prose is
    returned in `value` but counts as a broken format. For text, a non-empty answer (an <answer>
    tag left unclosed, as when the model ran out of tokens, also counts as broken).
    """

    text: str
    format_ok: bool
    source: Source
    value: Any = None


def normalize_output(text: str, expected: ResponseFormat = "text") -> NormalizedOutput:
    without_thinking = _THINKING.sub("", text).strip()
    if expected == "json":
        return _normalize_json(without_thinking)
    tagged = _ANSWER_TAG.findall(without_thinking)
    if tagged:
        answer = tagged[-1].strip()  # the last one: earlier ones may be quoted inside the reasoning
        return NormalizedOutput(answer, bool(answer), "answer_tag")
    unclosed = _OPEN_ANSWER_TAG.search(without_thinking)
    if unclosed:
        return NormalizedOutput(unclosed.group(1).strip(), False, "answer_tag")
    return NormalizedOutput(without_thinking, bool(without_thinking), "raw" if without_thinking else "none")


def _normalize_json(text: str) -> NormalizedOutput:
    candidates: list[tuple[Source, str]] = [("answer_tag", t) for t in reversed(_ANSWER_TAG.findall(text))]
    candidates += [("json_fence", f) for f in _FENCE.findall(text)]
    candidates.append(("raw", text))
    for source, candidate in candidates:
        inner = candidate.strip()
        fenced = _FENCE.search(inner)  # a fence inside answer tags
        if fenced and source == "answer_tag":
            inner = fenced.group(1).strip()
        parsed = _parse(inner)
        if parsed is not _NOTHING:
            return NormalizedOutput(inner, True, source, parsed)
    embedded = _first_embedded_json(text)
    if embedded is not None:
        fragment, value = embedded
        return NormalizedOutput(fragment, False, "embedded", value)
    return NormalizedOutput(text, False, "none")


_NOTHING = object()


def _parse(text: str) -> Any:
    if not text:
        return _NOTHING
    try:
        return json.loads(text)
    except ValueError:
        return _NOTHING


def _first_embedded_json(text: str) -> tuple[str, Any] | None:
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char in "{[":
            try:
                value, end = decoder.raw_decode(text, index)
            except ValueError:
                continue
            return text[index : end], value
    return None


def looks_like_refusal(text: str) -> bool:
    """A refusal opens with an apology or "I can't"; checked on the opening only, so that an answer
    that merely quotes such a sentence is not counted."""
    opening = normalize_output(text).text.lower().replace("\u2019", "'")[:120]
    return any(opening.startswith(phrase) or f" {phrase}" in opening[:60] for phrase in _REFUSAL_OPENINGS)
