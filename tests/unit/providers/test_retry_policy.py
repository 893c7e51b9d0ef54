"""Retries: capped exponential backoff with full jitter, Retry-After honoured, permanent errors never retried."""

from __future__ import annotations

import pytest

from cutover.providers.errors import ErrorKind, ProviderError
from cutover.providers.retry import RetryPolicy, call_with_retries


class Flaky:
    """Fails with the given errors in order, then returns "ok"."""

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def error(kind: ErrorKind, retry_after: float | None = None) -> ProviderError:
    return ProviderError(kind, "simulated", retry_after=retry_after)


def make_policy(*, random_value: float = 1.0, **overrides: object) -> tuple[RetryPolicy, list[float]]:
    slept: list[float] = []
    settings = {"max_retries": 5, "base_delay": 0.5, "max_delay": 4.0, **overrides}
    return RetryPolicy(sleep=slept.append, random=lambda: random_value, **settings), slept  # type: ignore[arg-type]


def test_backoff__doubles_from_the_base_delay_and_is_capped():
    policy, slept = make_policy(random_value=1.0)  # jitter at its top: the ceiling itself
    flaky = Flaky(*[error(ErrorKind.SERVER_ERROR)] * 5)

    outcome = call_with_retries(flaky, policy)

    assert outcome.value == "ok"
    assert slept == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert outcome.retries == 5 and outcome.delays == tuple(slept)


def test_full_jitter__delay_drawn_between_zero_and_the_ceiling():
    policy, slept = make_policy(random_value=0.25)
    call_with_retries(Flaky(error(ErrorKind.TIMEOUT), error(ErrorKind.TIMEOUT)), policy)
    assert slept == [0.125, 0.25]


def test_full_jitter__real_random_stays_within_bounds():
    policy = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=3.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 3.0), (6, 3.0)]:
        delays = [policy.backoff(attempt) for _ in range(500)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8, "full jitter spreads over the whole range"


def test_rate_limited_with_retry_after__waits_exactly_that_long():
    policy, slept = make_policy(random_value=0.0)
    outcome = call_with_retries(Flaky(error(ErrorKind.RATE_LIMITED, retry_after=2.5)), policy)
    assert slept == [2.5]
    assert outcome.retries == 1


def test_retry_after_longer_than_we_accept__gives_up_at_once():
    policy, slept = make_policy(max_retry_after=10.0)
    with pytest.raises(ProviderError) as raised:
        call_with_retries(Flaky(error(ErrorKind.RATE_LIMITED, retry_after=60)), policy)
    assert slept == [] and raised.value.retries == 0


@pytest.mark.parametrize("kind", [ErrorKind.BAD_REQUEST, ErrorKind.AUTH, ErrorKind.CONTEXT_LENGTH_EXCEEDED,
                                  ErrorKind.CONTENT_FILTER])
def test_permanent_errors__never_retried(kind):
    policy, slept = make_policy()
    flaky = Flaky(error(kind))
    with pytest.raises(ProviderError):
        call_with_retries(flaky, policy)
    assert flaky.calls == 1 and slept == []


def test_policy_asked_to_retry_bad_request_or_auth__refused_at_construction():
    with pytest.raises(ValueError, match="refusing to retry"):
        RetryPolicy(retry_on=frozenset({ErrorKind.SERVER_ERROR, ErrorKind.AUTH}))


def test_retries_exhausted__last_error_raised_with_retry_count_and_delays():
    policy, slept = make_policy(max_retries=2, random_value=1.0)
    with pytest.raises(ProviderError) as raised:
        call_with_retries(Flaky(*[error(ErrorKind.SERVER_ERROR)] * 3), policy)
    assert raised.value.retries == 2
    assert raised.value.retry_delays == (0.5, 1.0)


def test_non_provider_exception__propagates_without_retry():
    policy, slept = make_policy()

    def broken() -> None:
        raise KeyError("a bug, not a provider failure")

    with pytest.raises(KeyError):
        call_with_retries(broken, policy)
    assert slept == []
