"""The Cutover SDK for applications: config polling, routing, calls with fallback, events, shadow mirroring.

No Django here; see docs/sdk.md.
"""

from cutover.routing import Arm, Decision, Reason, bucket, choose_arm
from cutover.sdk.client import CutoverClient, PlanNotConfigured, RoutedCompletion, RoutedStream
from cutover.sdk.config import ConfigClient, ConfigState
from cutover.sdk.document import ConfigDocument, InvalidDocument, PlanConfig, parse_document
from cutover.sdk.reporter import BackgroundSender, SenderStats

__all__ = [
    "Arm",
    "BackgroundSender",
    "ConfigClient",
    "ConfigDocument",
    "ConfigState",
    "CutoverClient",
    "Decision",
    "InvalidDocument",
    "PlanConfig",
    "PlanNotConfigured",
    "Reason",
    "RoutedCompletion",
    "RoutedStream",
    "SenderStats",
    "bucket",
    "choose_arm",
    "parse_document",
]
