"""A loopback server that speaks the OpenAI, Anthropic and Gemini wire formats with scripted models."""

from cutover.simulator.scenario import (
    AnswerSpec,
    ErrorRates,
    LatencySpec,
    ModelScript,
    Scenario,
    UsageSpec,
)
from cutover.simulator.server import SimulatorServer

__all__ = [
    "AnswerSpec",
    "ErrorRates",
    "LatencySpec",
    "ModelScript",
    "Scenario",
    "SimulatorServer",
    "UsageSpec",
]
