"""The entry point: call any endpoint with one request type, get one Completion back, retried and priced."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

from cutover.providers.base import Adapter, StreamPiece
from cutover.providers.errors import ProviderError
from cutover.providers.pricing import cost_usd
from cutover.providers.retry import RetryPolicy, call_with_retries
from cutover.providers.types import ChatRequest, Completion, EndpointSpec, FinishReason, Provider, ToolCall

DEFAULT_RETRY_POLICY = RetryPolicy()
Clock = Callable[[], float]


def make_adapter(endpoint: EndpointSpec) -> Adapter:
    # Imported lazily so that using one provider does not pay for importing the other SDKs.
    if endpoint.provider in (Provider.OPENAI, Provider.OPENAI_COMPATIBLE):
        from cutover.providers.openai_adapter import OpenAIAdapter

        return OpenAIAdapter(endpoint)
    if endpoint.provider == Provider.ANTHROPIC:
        from cutover.providers.anthropic_adapter import AnthropicAdapter

        return AnthropicAdapter(endpoint)
    if endpoint.provider == Provider.GEMINI:
        from cutover.providers.gemini_adapter import GeminiAdapter

        return GeminiAdapter(endpoint)
    raise ValueError(f"unknown provider {endpoint.provider!r}")


class ModelClient:
    """Calls one endpoint. Reuse it: it keeps the SDK client (and its connection pool) between calls.

    Latency and time to first token are measured from the call, retries and their waits included —
    what the user waited.
    """

    def __init__(self, endpoint: EndpointSpec, *, retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
                 adapter: Adapter | None = None, clock: Clock = time.perf_counter) -> None:
        self.endpoint = endpoint
        self.retry_policy = retry_policy
        self.adapter = adapter or make_adapter(endpoint)
        self.clock = clock

    def complete(self, request: ChatRequest, *, stream: bool = False,
                 retry_policy: RetryPolicy | None = None) -> Completion:
        """One call; `retry_policy` overrides the client's for this call only."""
        if stream:
            completion_stream = self.stream(request, retry_policy=retry_policy)
            for _ in completion_stream:
                pass
            return completion_stream.completion
        started = self.clock()
        outcome = call_with_retries(lambda: self.adapter.create(request), retry_policy or self.retry_policy)
        attempt = outcome.value
        return Completion(
            text=attempt.text,
            finish_reason=attempt.finish_reason,
            input_tokens=attempt.input_tokens,
            output_tokens=attempt.output_tokens,
            latency_ms=(self.clock() - started) * 1000,
            provider=self.endpoint.provider.value,
            model=self.endpoint.model,
            request_id=attempt.request_id,
            cost_usd=cost_usd(self.endpoint, input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens),
            retries=outcome.retries,
            retry_delays=outcome.delays,
            tool_calls=attempt.tool_calls,
            raw=attempt.raw,
        )

    def stream(self, request: ChatRequest, *, retry_policy: RetryPolicy | None = None) -> CompletionStream:
        return CompletionStream(self, request, retry_policy or self.retry_policy)


class CompletionStream:
    """Iterate for the text as it arrives; `completion` holds the whole result once iteration ends.

    Opening the stream and receiving its first event are retried; a failure after text was
    delivered is not (the caller has already shown it), and raises ProviderError.
    """

    def __init__(self, client: ModelClient, request: ChatRequest, retry_policy: RetryPolicy) -> None:
        self._client = client
        self._request = request
        self._retry_policy = retry_policy
        self._completion: Completion | None = None

    @property
    def completion(self) -> Completion:
        if self._completion is None:
            raise RuntimeError("the stream has not been read to the end yet")
        return self._completion

    def __iter__(self) -> Iterator[str]:
        client = self._client
        started = client.clock()

        def open_stream() -> Iterator[StreamPiece]:
            pieces = iter(client.adapter.stream(self._request))
            first = next(pieces, None)  # errors from the HTTP status surface here, inside the retry
            return pieces if first is None else itertools.chain([first], pieces)

        outcome = call_with_retries(open_stream, self._retry_policy)
        text: list[str] = []
        first_token_at: float | None = None
        finish: FinishReason | None = None
        input_tokens = output_tokens = 0
        request_id: str | None = None
        tool_calls: tuple[ToolCall, ...] = ()
        raw: list[Any] = []
        for piece in outcome.value:
            if (piece.text or piece.tool_calls) and first_token_at is None:
                first_token_at = client.clock()
            if piece.text:
                text.append(piece.text)
                yield piece.text
            finish = piece.finish_reason or finish
            input_tokens = piece.input_tokens if piece.input_tokens is not None else input_tokens
            output_tokens = piece.output_tokens if piece.output_tokens is not None else output_tokens
            request_id = piece.request_id or request_id
            tool_calls = piece.tool_calls or tool_calls
            raw.append(piece.raw)
        ended = client.clock()
        endpoint = client.endpoint
        self._completion = Completion(
            text="".join(text),
            finish_reason=finish or FinishReason.STOP,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_ms=(ended - started) * 1000,
            ttft_ms=((first_token_at if first_token_at is not None else ended) - started) * 1000,
            provider=endpoint.provider.value,
            model=endpoint.model,
            request_id=request_id,
            cost_usd=cost_usd(endpoint, input_tokens=input_tokens, output_tokens=output_tokens),
            retries=outcome.retries,
            retry_delays=outcome.delays,
            tool_calls=tool_calls,
            raw=raw,
        )


_clients: dict[EndpointSpec, ModelClient] = {}


def get_provider(endpoint: EndpointSpec) -> ModelClient:
    """A shared client per endpoint (with the default retry policy), so repeated calls reuse connections."""
    client = _clients.get(endpoint)
    if client is None:
        client = _clients[endpoint] = ModelClient(endpoint)
    return client


def complete(endpoint: EndpointSpec, request: ChatRequest, *, stream: bool = False,
             retry_policy: RetryPolicy | None = None) -> Completion:
    """One call to `endpoint`; raises ProviderError (with `.kind` and `.retries`) when it fails for good."""
    return get_provider(endpoint).complete(request, stream=stream, retry_policy=retry_policy)


__all__ = ["CompletionStream", "ModelClient", "ProviderError", "complete", "get_provider", "make_adapter"]
