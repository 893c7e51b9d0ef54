"""The SDK config document (INTERFACES.md), parsed and checked before anything routes by it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cutover.providers.types import EndpointSpec, Provider
from cutover.routing import Arm


class InvalidDocument(ValueError):
    """The control plane (or a bootstrap file) gave something that is not a valid config document."""


@dataclass(frozen=True, slots=True)
class ArmConfig:
    endpoint: EndpointSpec
    prompt_adapter: str | None


@dataclass(frozen=True, slots=True)
class PlanConfig:
    key: str
    state: str
    candidate_percent: float
    rollback: bool
    shadow_sample_rate: float
    salt: str
    baseline: ArmConfig
    candidate: ArmConfig
    # Shadow mirroring of requests that offer tools (which may have side effects) only when the plan says so.
    shadow_tool_calls: bool = False

    def arm(self, arm: Arm) -> ArmConfig:
        return self.candidate if arm is Arm.CANDIDATE else self.baseline


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    environment: str
    version: int
    plans: Mapping[str, PlanConfig]
    raw: Mapping[str, Any]

    def plan(self, key: str) -> PlanConfig | None:
        return self.plans.get(key)


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise InvalidDocument(f"{where}: {message}")


def _number(value: Any, where: str, low: float, high: float) -> float:
    _require(isinstance(value, int | float) and not isinstance(value, bool), where, "must be a number")
    _require(math.isfinite(value) and low <= value <= high, where, f"must be within [{low:g}, {high:g}]")
    return float(value)


def _arm(data: Any, where: str) -> ArmConfig:
    _require(isinstance(data, Mapping), where, "must be an object")
    _require(isinstance(data.get("model"), str) and bool(data["model"]), f"{where}.model", "must be a string")
    try:
        Provider(data.get("provider"))
    except ValueError:
        raise InvalidDocument(f"{where}.provider: unknown provider {data.get('provider')!r}") from None
    params = data.get("params")
    _require(params is None or isinstance(params, Mapping), f"{where}.params", "must be an object")
    adapter = data.get("prompt_adapter")
    _require(adapter is None or isinstance(adapter, str), f"{where}.prompt_adapter", "must be a string or null")
    try:
        endpoint = EndpointSpec.from_dict(data)
    except (TypeError, ValueError, KeyError) as error:
        raise InvalidDocument(f"{where}: {error}") from None
    return ArmConfig(endpoint, adapter or None)


def _plan(data: Any, where: str) -> PlanConfig:
    _require(isinstance(data, Mapping), where, "must be an object")
    key = data.get("key")
    _require(isinstance(key, str) and bool(key), f"{where}.key", "must be a non-empty string")
    rollback = data.get("rollback")
    _require(isinstance(rollback, bool), f"{where}.rollback", "must be true or false")
    salt = data.get("salt")
    _require(isinstance(salt, str), f"{where}.salt", "must be a string")
    candidate_percent = _number(data.get("candidate_percent"), f"{where}.candidate_percent", 0, 100)
    candidate = _arm(data.get("candidate"), f"{where}.candidate")
    # A completed migration drops its baseline: the candidate serves everything and stands in for it.
    completed = data.get("baseline") is None and candidate_percent == 100 and not rollback
    return PlanConfig(
        key=key,
        state=str(data.get("state", "")),
        candidate_percent=candidate_percent,
        rollback=rollback,
        shadow_sample_rate=_number(data.get("shadow_sample_rate", 0.0), f"{where}.shadow_sample_rate", 0, 1),
        salt=salt,
        baseline=candidate if completed else _arm(data.get("baseline"), f"{where}.baseline"),
        candidate=candidate,
        shadow_tool_calls=bool(data.get("shadow_tool_calls", False)),
    )


def parse_document(data: Any) -> ConfigDocument:
    """A checked document, or InvalidDocument naming the first bad field. Extra fields are ignored."""
    _require(isinstance(data, Mapping), "document", "must be a JSON object")
    version = data.get("version")
    _require(isinstance(version, int) and not isinstance(version, bool), "version", "must be an integer")
    plans_data = data.get("plans")
    _require(isinstance(plans_data, list), "plans", "must be a list")
    plans: dict[str, PlanConfig] = {}
    for index, item in enumerate(plans_data):
        plan = _plan(item, f"plans[{index}]")
        _require(plan.key not in plans, f"plans[{index}].key", f"{plan.key!r} appears twice")
        plans[plan.key] = plan
    return ConfigDocument(environment=str(data.get("environment", "")), version=version,
                          plans=MappingProxyType(plans), raw=data)
