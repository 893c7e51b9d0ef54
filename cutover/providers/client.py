"""The entry point: call any endpoint with one request type, get one Completion back, retried and priced."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

from cutover.providers.base import Adapter, Attempt, StreamPiece
from cutover.providers.errors import ProviderError
from cutover.providers.pricing import cost_usd
from cutover.providers.retry import RetryOutcome, RetryPolicy, call_with_retries
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
        return completion_from_attempt(self.endpoint, outcome, (self.clock() - started) * 1000)

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
        tally = StreamTally(client.endpoint, started, client.clock)
        for piece in outcome.value:
            tally.add(piece)
            if piece.text:
                yield piece.text
        self._completion = tally.completion(outcome)


def completion_from_attempt(endpoint: EndpointSpec, outcome: RetryOutcome[Attempt], latency_ms: float) -> Completion:
    """The Completion of a non-streamed call whose last attempt succeeded (sync and async clients alike)."""
    attempt = outcome.value
    return Completion(
        text=attempt.text,
        finish_reason=attempt.finish_reason,
        input_tokens=attempt.input_tokens,
        output_tokens=attempt.output_tokens,
        latency_ms=latency_ms,
        provider=endpoint.provider.value,
        model=endpoint.model,
        request_id=attempt.request_id,
        cost_usd=cost_usd(endpoint, input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens),
        retries=outcome.retries,
        retry_delays=outcome.delays,
        tool_calls=attempt.tool_calls,
        raw=attempt.raw,
    )


class StreamTally:
    """Adds up one streamed answer's pieces into its Completion (sync and async streams alike). Time to first
    token is taken when the first text or tool call is added; `started` is when the call began."""

    def __init__(self, endpoint: EndpointSpec, started: float, clock: Clock) -> None:
        self.endpoint = endpoint
        self.started = started
        self.clock = clock
        self.text: list[str] = []
        self.first_token_at: float | None = None
        self.finish: FinishReason | None = None
        self.input_tokens = self.output_tokens = 0
        self.request_id: str | None = None
        self.tool_calls: tuple[ToolCall, ...] = ()
        self.raw: list[Any] = []

    def add(self, piece: StreamPiece) -> None:
        if (piece.text or piece.tool_calls) and self.first_token_at is None:
            self.first_token_at = self.clock()
        if piece.text:
            self.text.append(piece.text)
        self.finish = piece.finish_reason or self.finish
        self.input_tokens = piece.input_tokens if piece.input_tokens is not None else self.input_tokens
        self.output_tokens = piece.output_tokens if piece.output_tokens is not None else self.output_tokens
        self.request_id = piece.request_id or self.request_id
        self.tool_calls = piece.tool_calls or self.tool_calls
        self.raw.append(piece.raw)

    def completion(self, outcome: RetryOutcome[Any]) -> Completion:
        ended = self.clock()
        endpoint, started = self.endpoint, self.started
        return Completion(
            text="".join(self.text),
            finish_reason=self.finish or FinishReason.STOP,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_ms=(ended - started) * 1000,
            ttft_ms=((self.first_token_at if self.first_token_at is not None else ended) - started) * 1000,
            provider=endpoint.provider.value,
            model=endpoint.model,
            request_id=self.request_id,
            cost_usd=cost_usd(endpoint, input_tokens=self.input_tokens, output_tokens=self.output_tokens),
            retries=outcome.retries,
            retry_delays=outcome.delays,
            tool_calls=self.tool_calls,
            raw=self.raw,
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


__all__ = ["CompletionStream", "ModelClient", "ProviderError", "StreamTally", "complete", "completion_from_attempt",
           "get_provider", "make_adapter"]
