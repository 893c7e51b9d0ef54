"""Signatures of Cutover's generic alert webhooks, so a receiver can check a delivery with the SDK alone.

Every delivery carries a header in the style of Stripe's:

    X-Cutover-Signature: t=1718000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

`v1` is the hex HMAC-SHA256, keyed with the channel's signing secret, of the timestamp, a dot and the raw
request body (`f"{t}.{body}"`). A receiver recomputes it over the bytes it received (before parsing the
JSON), compares in constant time and refuses old timestamps so a captured delivery cannot be replayed:

    from cutover.webhooks import SIGNATURE_HEADER, verify

    if not verify(request.body, request.headers.get(SIGNATURE_HEADER, ""), secret):
        return 400

During a secret rotation a header may hold several `v1=` signatures; one that matches is enough.
"""

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Cutover-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    signed = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The X-Cutover-Signature header value for `body` sent at `timestamp` (Unix seconds)."""
    if not secret:
        raise ValueError("a signing secret is required")
    return f"t={int(timestamp)},{SCHEME}={_digest(body, secret, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]] | None:
    timestamp, signatures = None, []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return None
        elif name == SCHEME and value:
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify(body: bytes | str, header: str | None, secret: str, *,
           tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """Whether `header` is a valid signature of `body` under `secret`, made within `tolerance_seconds` of
    `now` (default: the current time). Never raises: a missing or malformed header is simply not valid."""
    if not header or not secret:
        return False
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = _digest(raw, secret, timestamp)
    # Compare with every candidate (no early exit) so timing says nothing about which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    return any(matches)


__all__ = ["DEFAULT_TOLERANCE_SECONDS", "SIGNATURE_HEADER", "sign", "verify"]
