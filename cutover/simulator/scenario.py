"""What each simulated model does: its latency, its failures, its answers and its token usage.

A scenario file is JSON:

    {"seed": 7,
     "default": {...a model script...},
     "models": {"gpt-4": {...}, "claude-sonnet": {...}}}

Every field of a script is optional; unknown keys are refused so a typo cannot silently do nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# The z-score of the 95th percentile: a lognormal with median m has p95 = m * exp(1.645 * sigma).
_Z95 = 1.6448536269514722

ErrorKindName = Literal[
    "rate_limited", "server_error", "timeout", "bad_request", "auth", "context_length_exceeded", "content_filter"
]
ERROR_KINDS: tuple[str, ...] = (
    "rate_limited", "server_error", "timeout", "bad_request", "auth", "context_length_exceeded", "content_filter",
)
AnswerKind = Literal["echo", "template", "deterministic", "json", "refusal", "mirror", "tool_call", "judge"]
Wrap = Literal["none", "json_fence", "answer_tag"]
Alteration = Literal["replace", "truncate", "append", "break_format"]
JudgeFallback = Literal["tie", "A", "B"]

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."

_VOCABULARY = (
    "the", "account", "balance", "invoice", "refund", "order", "shipping", "customer", "policy",
    "request", "support", "team", "update", "payment", "card", "address", "delivery", "status",
    "ticket", "issue", "resolved", "pending", "review", "within", "days", "please", "confirm",
    "details", "thanks", "we", "your", "our", "can", "will", "has", "been", "is", "are", "for", "with",
    "to", "of", "and", "in", "on", "by",
)


@dataclass(frozen=True, slots=True)
class LatencySpec:
    """A lognormal latency given by its median and 95th percentile, in milliseconds."""

    median_ms: float = 0.0
    p95_ms: float | None = None

    def sample_ms(self, rng: random.Random) -> float:
        if self.median_ms <= 0:
            return 0.0
        if self.p95_ms is None or self.p95_ms <= self.median_ms:
            return self.median_ms
        sigma = math.log(self.p95_ms / self.median_ms) / _Z95
        return rng.lognormvariate(math.log(self.median_ms), sigma)


@dataclass(frozen=True, slots=True)
class ErrorRates:
    """Probability per request of each failure, plus how a failure looks.

    A timeout holds the response for `timeout_hold_s` (longer than the client's timeout, so the
    client's own timeout fires), then answers 504.
    """

    rate_limited: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    bad_request: float = 0.0
    auth: float = 0.0
    context_length_exceeded: float = 0.0
    content_filter: float = 0.0
    retry_after_s: float | None = 1.0
    timeout_hold_s: float = 30.0

    def draw(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for kind in ERROR_KINDS:
            rate = getattr(self, kind)
            if roll < rate:
                return kind
            roll -= rate
        return None


@dataclass(frozen=True, slots=True)
class AnswerSpec:
    """What the model says.

    kind: echo (the last user turn), template (placeholders {last_user} {system} {model} {turns}),
    deterministic (words chosen by a hash of seed, model and prompt), json (`json` serialised, or
    {"answer": <deterministic>}), refusal, tool_call (calls the request's first tool with `json` as
    arguments), mirror (the answer `mirror_model` would give, altered on `alter_fraction` of prompts), judge
    (an LLM judge's JSON verdict on the two responses of a pairwise prompt, as cutover.comparators.judge
    writes it: the response containing `judge_prefers` wins; when neither or both do, `judge_otherwise` —
    "tie", or "A"/"B" for a judge biased towards a position; a prompt without two responses gets prose
    and no verdict).
    `refusal_rate` refuses that fraction of prompts; `wrap` puts the text in a ```json fence or <answer> tags.
    `vary_fraction` answers that fraction of *calls* (drawn per call, not per prompt) with another sample —
    one of `variants` alternative deterministic answers — as a model sampling at temperature > 0 does; a
    mirror of such a model varies alike. 0 (the default) keeps every answer fixed by seed and prompt.
    """

    kind: AnswerKind = "deterministic"
    template: str = "{last_user}"
    json: Any = None
    words: int = 24
    wrap: Wrap = "none"
    refusal_rate: float = 0.0
    mirror_model: str | None = None
    alter_fraction: float = 0.0
    alter: Alteration = "replace"
    alter_text: str = "This answer was altered by the simulator."
    vary_fraction: float = 0.0
    variants: int = 1000
    judge_prefers: str = ""
    judge_otherwise: JudgeFallback = "tie"


@dataclass(frozen=True, slots=True)
class UsageSpec:
    """Token usage: estimated from characters unless fixed."""

    chars_per_token: float = 4.0
    input_tokens: int | None = None
    output_tokens: int | None = None

    def count(self, text: str) -> int:
        return max(1, math.ceil(len(text) / self.chars_per_token)) if text else 0


@dataclass(frozen=True, slots=True)
class ModelScript:
    latency: LatencySpec = field(default_factory=LatencySpec)
    # Time to the first streamed chunk; by default a third of the sampled total latency.
    ttft: LatencySpec | None = None
    errors: ErrorRates = field(default_factory=ErrorRates)
    answer: AnswerSpec = field(default_factory=AnswerSpec)
    usage: UsageSpec = field(default_factory=UsageSpec)
    context_window: int | None = None
    stream_chunk_words: int = 3

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelScript:
        return _build(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> ModelScript:
        """A copy with `changes` deep-merged in — how a regression is injected into a running model."""
        return ModelScript.from_dict(_deep_merge(self.to_dict(), changes))


DEFAULT_SCRIPT = ModelScript(latency=LatencySpec(median_ms=5.0, p95_ms=15.0))


@dataclass(frozen=True, slots=True)
class Scenario:
    default: ModelScript = DEFAULT_SCRIPT
    models: Mapping[str, ModelScript] = field(default_factory=dict)
    seed: int = 0
    # When set, every request must present this key; anything else is answered as bad auth.
    api_key: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        _refuse_unknown(cls, data, "scenario")
        default = ModelScript.from_dict(data.get("default", {})) if "default" in data else DEFAULT_SCRIPT
        models = {name: ModelScript.from_dict(script) for name, script in data.get("models", {}).items()}
        return cls(default=default, models=models, seed=int(data.get("seed", 0)), api_key=data.get("api_key"))

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def script_for(self, model: str) -> ModelScript:
        return self.models.get(model, self.default)


def _refuse_unknown(cls: type, data: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {where} field(s) {sorted(unknown)}; known: {sorted(known)}")


_NESTED: dict[str, type] = {
    "latency": LatencySpec, "ttft": LatencySpec, "errors": ErrorRates, "answer": AnswerSpec, "usage": UsageSpec,
}


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    _refuse_unknown(cls, data, cls.__name__)
    values: dict[str, Any] = {}
    for key, value in data.items():
        nested = _NESTED.get(key) if cls is ModelScript else None
        values[key] = _build(nested, value) if nested and isinstance(value, Mapping) else value
    return cls(**values)


def _deep_merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimRequest:
    """The parts of a chat request that a script's answer depends on, whatever the wire format."""

    model: str
    system: str
    turns: tuple[tuple[str, str], ...]  # (role, text), role in user/assistant
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    json_mode: bool = False
    tool_names: tuple[str, ...] = ()

    @property
    def last_user(self) -> str:
        return next((text for role, text in reversed(self.turns) if role == "user"), "")

    @property
    def prompt_text(self) -> str:
        return self.system + "\n" + "\n".join(text for _, text in self.turns)


@dataclass(frozen=True, slots=True)
class SimAnswer:
    text: str
    finish: Literal["stop", "length", "tool_calls"]
    input_tokens: int
    output_tokens: int
    tool_name: str | None = None
    tool_arguments: str | None = None


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by its inputs, so "a fraction of prompts" is the same set each run."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def render_answer(scenario: Scenario, request: SimRequest, rng: random.Random | None = None) -> SimAnswer:
    """The scripted answer; `rng` draws the per-call variation of scripts with `vary_fraction` (without one,
    answers never vary)."""
    script = scenario.script_for(request.model)
    text, tool = _answer_text(scenario, script, request, depth=0, rng=rng)
    usage = script.usage
    input_tokens = usage.input_tokens if usage.input_tokens is not None else usage.count(request.prompt_text)
    if tool is not None:
        output_tokens = usage.output_tokens if usage.output_tokens is not None else usage.count(tool[1])
        return SimAnswer("", "tool_calls", input_tokens, output_tokens, tool_name=tool[0], tool_arguments=tool[1])

    finish: Literal["stop", "length"] = "stop"
    for stop in request.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    output_tokens = usage.output_tokens if usage.output_tokens is not None else usage.count(text)
    if request.max_tokens is not None and output_tokens > request.max_tokens:
        text = text[: int(request.max_tokens * usage.chars_per_token)]
        output_tokens, finish = request.max_tokens, "length"
    return SimAnswer(text, finish, input_tokens, output_tokens)


def _answer_text(
    scenario: Scenario, script: ModelScript, request: SimRequest, depth: int, rng: random.Random | None = None
) -> tuple[str, tuple[str, str] | None]:
    spec = script.answer
    seed = str(scenario.seed)
    if spec.refusal_rate and stable_fraction(seed, "refuse", request.model, request.prompt_text) < spec.refusal_rate:
        return REFUSAL_TEXT, None
    if rng is not None and spec.vary_fraction and spec.kind != "mirror" and rng.random() < spec.vary_fraction:
        seed = f"{seed}~{rng.randrange(1, max(spec.variants, 1) + 1)}"

    if spec.kind == "tool_call" and request.tool_names:
        return "", (request.tool_names[0], json.dumps(spec.json if spec.json is not None else {}))
    if spec.kind == "mirror" and spec.mirror_model and depth < 4:
        mirrored = SimRequest(**{**_as_dict(request), "model": spec.mirror_model})
        text, tool = _answer_text(scenario, scenario.script_for(spec.mirror_model), mirrored, depth + 1, rng)
        if tool is None and stable_fraction(seed, "alter", request.model, request.prompt_text) < spec.alter_fraction:
            text = _alter(text, spec)
        return text, tool

    if spec.kind == "echo":
        text = request.last_user
    elif spec.kind == "template":
        text = spec.template.format_map(_Placeholders(
            last_user=request.last_user, system=request.system, model=request.model, turns=len(request.turns)
        ))
    elif spec.kind == "json":
        value = spec.json if spec.json is not None else {"answer": _deterministic(seed, request, spec.words)}
        text = json.dumps(value)
    elif spec.kind == "refusal":
        text = REFUSAL_TEXT
    elif spec.kind == "judge":
        text = _judge_verdict(spec, request.last_user)
    else:
        text = _deterministic(seed, request, spec.words)
    return _wrap(text, spec.wrap), None


def _deterministic(seed: str, request: SimRequest, words: int) -> str:
    digest = hashlib.sha256(f"{seed}\x1f{request.model}\x1f{request.prompt_text}".encode()).digest()
    rng = random.Random(digest)
    chosen = [rng.choice(_VOCABULARY) for _ in range(max(words, 1))]
    return " ".join(chosen).capitalize() + "."


def _between(text: str, start: str, end: str) -> str | None:
    _, found, rest = text.partition(start)
    body, closed, _ = rest.partition(end)
    return body.strip() if found and closed else None


def _judge_verdict(spec: AnswerSpec, prompt: str) -> str:
    """A pairwise judge's answer to the prompt cutover.comparators.judge writes ([Response A] … [End of
    response A], then B): the response containing `judge_prefers` (any case) wins, else `judge_otherwise`."""
    first = _between(prompt, "[Response A]", "[End of response A]")
    second = _between(prompt, "[Response B]", "[End of response B]")
    if first is None or second is None:
        return "I see no two responses to compare."
    wanted = spec.judge_prefers.lower()
    in_first, in_second = bool(wanted) and wanted in first.lower(), bool(wanted) and wanted in second.lower()
    if in_first != in_second:
        winner = "A" if in_first else "B"
        reason = f"Response {winner} contains {spec.judge_prefers!r}; the other does not."
    else:
        winner = spec.judge_otherwise
        reason = "Both responses are equally good." if winner == "tie" else f"Response {winner} reads better."
    return json.dumps({"winner": winner, "reason": reason})


def _wrap(text: str, wrap: Wrap) -> str:
    if wrap == "json_fence":
        return f"```json\n{text}\n```"
    if wrap == "answer_tag":
        return f"<answer>{text}</answer>"
    return text


def _alter(text: str, spec: AnswerSpec) -> str:
    if spec.alter == "truncate":
        return text[: max(1, len(text) // 2)]
    if spec.alter == "append":
        return f"{text} {spec.alter_text}"
    if spec.alter == "break_format":
        # The same content, but no longer parseable as the format it held (a classic migration regression).
        return f"Sure! Here is the result: {text.strip('`')}"
    return spec.alter_text


def _as_dict(request: SimRequest) -> dict[str, Any]:
    return {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}


class _Placeholders(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
