"""OpenAI chat completions through the official `openai` SDK; also any OpenAI-compatible base URL.

The wire format (request body, answer parsing) is openai_wire.py's, shared with the sidecar's raw-HTTP path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai

from cutover.providers.base import (
    Attempt,
    ClientCache,
    StreamPiece,
    effective_timeout,
    header,
    read_api_key,
)
from cutover.providers.errors import ErrorKind, ProviderError, error_from_http
from cutover.providers.openai_wire import ChunkReader, attempt_from_body, chat_body, retry_after_seconds
from cutover.providers.types import ChatRequest, EndpointSpec


class OpenAIAdapter:
    def __init__(self, endpoint: EndpointSpec) -> None:
        self.endpoint = endpoint
        self._clients = ClientCache()

    def _client(self) -> openai.OpenAI:
        # max_retries=0: our retry layer is the only one, so reported retries are the real ones.
        return self._clients.get(
            read_api_key(self.endpoint),
            lambda key: openai.OpenAI(api_key=key, base_url=self.endpoint.base_url, max_retries=0),
        )

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        return chat_body(self.endpoint, request) | {"timeout": effective_timeout(request, self.endpoint)}

    def create(self, request: ChatRequest) -> Attempt:
        with self._translated_errors():
            response = self._client().chat.completions.create(**self._params(request))
        return attempt_from_body(self.endpoint, response.model_dump(), getattr(response, "_request_id", None))

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]:
        params = self._params(request)
        params["stream_options"] = {"include_usage": True}
        with self._translated_errors():
            stream = self._client().chat.completions.create(**params, stream=True)
        reader = ChunkReader(self.endpoint, header(stream.response, "x-request-id"))
        with self._translated_errors(), stream:
            for chunk in stream:
                yield reader.piece(chunk.model_dump())

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except openai.APITimeoutError as error:  # before APIConnectionError: it is a subclass
            raise self._error(ErrorKind.TIMEOUT, str(error)) from error
        except openai.APIConnectionError as error:
            raise self._error(ErrorKind.SERVER_ERROR, f"connection failed: {error}") from error
        except openai.APIStatusError as error:
            raise error_from_http(
                error.status_code, error.message, code=error.code,
                retry_after=retry_after_seconds(getattr(error.response, "headers", None)),
                provider=self.endpoint.provider.value, model=self.endpoint.model, request_id=error.request_id,
            ) from error

    def _error(self, kind: ErrorKind, message: str, **facts: Any) -> ProviderError:
        return ProviderError(kind, message, provider=self.endpoint.provider.value, model=self.endpoint.model, **facts)
