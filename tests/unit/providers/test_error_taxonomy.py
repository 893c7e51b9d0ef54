"""Provider failures mapped onto one taxonomy from status codes and the providers' own messages."""

from __future__ import annotations

import pytest

from cutover.providers.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (429, "Rate limit reached for gpt-4 in organization org-x on tokens per min", ErrorKind.RATE_LIMITED),
        (500, "The server had an error while processing your request.", ErrorKind.SERVER_ERROR),
        (503, "Service Unavailable", ErrorKind.SERVER_ERROR),
        (529, "Overloaded", ErrorKind.SERVER_ERROR),
        (504, "Deadline expired before operation could complete.", ErrorKind.TIMEOUT),
        (401, "Incorrect API key provided: sk-abc***", ErrorKind.AUTH),
        (403, "Your API key does not have permission to use the specified resource.", ErrorKind.AUTH),
        (400, "API key not valid. Please pass a valid API key. API_KEY_INVALID", ErrorKind.AUTH),
        (400, "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 "
              "tokens. context_length_exceeded", ErrorKind.CONTEXT_LENGTH_EXCEEDED),
        (400, "prompt is too long: 210000 tokens > 200000 maximum", ErrorKind.CONTEXT_LENGTH_EXCEEDED),
        (400, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
         ErrorKind.CONTEXT_LENGTH_EXCEEDED),
        (413, "Request exceeds the maximum allowed number of bytes.", ErrorKind.CONTEXT_LENGTH_EXCEEDED),
        (400, "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
              "content_filter", ErrorKind.CONTENT_FILTER),
        (400, "Invalid value for 'temperature': expected a number.", ErrorKind.BAD_REQUEST),
        (404, "The model `gpt-5-turbo` does not exist", ErrorKind.BAD_REQUEST),
        (422, "messages: field required", ErrorKind.BAD_REQUEST),
    ],
)
def test_status_and_message__mapped_to_the_taxonomy(status, message, kind):
    assert kind_from_status(status, message) == kind


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("20", 20.0), ("0.5", 0.5), ("7s", 7.0), ("1.5s", 1.5), (None, None), ("soon", None), ("-3", 0.0)],
)
def test_retry_after__read_from_seconds_or_google_duration(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after__http_date_form_gives_seconds_from_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: retry now


def test_provider_error__retryable_only_for_transient_kinds():
    transient = {k for k in ErrorKind if ProviderError(k, "x").retryable}
    assert transient == {ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR}


def test_provider_error__message_names_provider_model_kind_and_status():
    error = ProviderError(ErrorKind.RATE_LIMITED, "slow down", provider="openai", model="gpt-4", status_code=429)
    assert str(error) == "openai/gpt-4: rate_limited (HTTP 429): slow down"
