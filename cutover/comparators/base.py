"""The one result type of every comparator."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Score:
    """A value in [0, 1] (1 = alike / as good) and a sentence a person can read; `details` is JSON-able."""

    value: float
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.value, int | float) or math.isnan(self.value) or not 0.0 <= self.value <= 1.0:
            raise ValueError(f"a score lies in [0, 1], not {self.value!r}")
        object.__setattr__(self, "value", float(self.value))

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason, **({"details": dict(self.details)} if self.details else {})}


class Comparator(Protocol):
    def __call__(self, candidate: str, reference: str) -> Score: ...
