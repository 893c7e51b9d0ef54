"""HTTP to the control plane (httpx, one client per background thread) and the backoff every loop shares."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from cutover import __name__ as _package
from cutover.providers.errors import parse_retry_after

USER_AGENT = f"{_package}-python-sdk/0.1"


class Backoff:
    """Capped exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).
    A Retry-After from the server is waited instead (bounded by `max_retry_after`)."""

    def __init__(self, base: float, cap: float, *, max_retry_after: float = 600.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        self.max_retry_after = max_retry_after
        self.rand = rand
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return self.rand() * ceiling


def retry_after_of(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    return parse_retry_after(response.headers.get("retry-after"))


class ControlPlaneHTTP:
    """The SDK endpoints of one control plane, with one SDK key. Not shared between threads."""

    def __init__(self, base_url: str, sdk_key: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {sdk_key}", "User-Agent": USER_AGENT},
            timeout=timeout, transport=transport, trust_env=False,
        )

    def get(self, path: str, *, headers: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
            timeout: float | None = None) -> httpx.Response:
        return self._client.get(self.base_url + path, headers=headers, params=params,
                                timeout=timeout if timeout is not None else self.timeout)

    def post_json(self, path: str, body: bytes) -> httpx.Response:
        return self._client.post(self.base_url + path, content=body,
                                 headers={"Content-Type": "application/json"})

    def close(self) -> None:
        self._client.close()
