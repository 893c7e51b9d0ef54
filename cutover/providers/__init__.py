"""The provider layer: one request type, one Completion, one error taxonomy over the official SDKs."""

from cutover.providers.client import CompletionStream, ModelClient, complete, get_provider
from cutover.providers.errors import ErrorKind, ProviderError
from cutover.providers.retry import NO_RETRIES, RetryPolicy
from cutover.providers.types import (
    ChatRequest,
    Completion,
    EndpointSpec,
    FinishReason,
    Message,
    Provider,
    Tool,
    ToolCall,
)

__all__ = [
    "NO_RETRIES",
    "ChatRequest",
    "Completion",
    "CompletionStream",
    "EndpointSpec",
    "ErrorKind",
    "FinishReason",
    "Message",
    "ModelClient",
    "Provider",
    "ProviderError",
    "RetryPolicy",
    "Tool",
    "ToolCall",
    "complete",
    "get_provider",
]
