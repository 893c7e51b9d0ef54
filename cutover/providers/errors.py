"""One error taxonomy for every provider, so that retries, metrics and health rules need not know the SDKs."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    CONTENT_FILTER = "content_filter"


# Transient kinds: the same request may well succeed a moment later.
RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR}
)


class ProviderError(Exception):
    """A failed model call, whichever SDK raised it.

    `retries` and `retry_delays` are filled in by the retry layer when it gives up, so that the
    caller can report how hard we tried.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        retries: int = 0,
        retry_delays: tuple[float, ...] = (),
    ) -> None:
        super().__init__(message)
        self.kind = ErrorKind(kind)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.retry_after = retry_after
        self.request_id = request_id
        self.retries = retries
        self.retry_delays = retry_delays

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __str__(self) -> str:
        where = f"{self.provider}/{self.model}: " if self.provider else ""
        status = f" (HTTP {self.status_code})" if self.status_code else ""
        return f"{where}{self.kind}{status}: {self.message}"

    def __repr__(self) -> str:
        return f"ProviderError(kind={self.kind.value!r}, status_code={self.status_code!r}, retries={self.retries})"


_CONTEXT_LENGTH_MARKERS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "input token count",
)
_CONTENT_FILTER_MARKERS = ("content_filter", "content_policy", "responsibleaipolicy", "safety")


def kind_from_status(status_code: int, message: str = "") -> ErrorKind:
    """Map an HTTP error status (and the provider's message) onto the taxonomy.

    Providers report an overlong prompt and a filtered prompt as plain 400s, so the message decides.
    """
    text = message.lower()
    if status_code == 429:
        return ErrorKind.RATE_LIMITED
    if status_code in (401, 403):
        return ErrorKind.AUTH
    if status_code in (408, 504):
        return ErrorKind.TIMEOUT
    if status_code >= 500:
        # 529 is Anthropic's "overloaded", 503 everyone's "unavailable": transient either way.
        return ErrorKind.SERVER_ERROR
    if status_code == 413 or any(marker in text for marker in _CONTEXT_LENGTH_MARKERS):
        return ErrorKind.CONTEXT_LENGTH_EXCEEDED
    if any(marker in text for marker in _CONTENT_FILTER_MARKERS):
        return ErrorKind.CONTENT_FILTER
    if "api key not valid" in text or "api_key_invalid" in text:
        return ErrorKind.AUTH  # Gemini answers a bad key with a 400
    return ErrorKind.BAD_REQUEST


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form) or a Google RetryInfo "1.5s" string."""
    if value is None:
        return None
    text = str(value).strip().removesuffix("s")
    try:
        seconds = float(text)
    except ValueError:
        return _retry_after_from_http_date(str(value))
    return max(seconds, 0.0)


def _retry_after_from_http_date(value: str) -> float | None:
    import email.utils
    import time

    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def error_from_http(status_code: int, message: str, *, code: str | None = None, retry_after: float | None = None,
                    provider: str = "", model: str = "", request_id: str | None = None) -> ProviderError:
    """The ProviderError for an HTTP error answer: the one status → kind mapping shared by the official-SDK
    adapters and the sidecar's raw-HTTP path, so that both classify (and so retry) a failure alike."""
    return ProviderError(kind_from_status(status_code, f"{message} {code or ''}"), message, provider=provider,
                         model=model, status_code=status_code, retry_after=retry_after,
                         request_id=request_id)
