"""cutover.webhooks: a receiver checks a Cutover webhook with the SDK alone (no Django)."""

import hashlib
import hmac
import json

import pytest

from cutover.webhooks import SIGNATURE_HEADER, sign, verify

SECRET = "whsec_0123456789abcdef0123456789abcdef"
BODY = json.dumps({"type": "alert.trigger", "alert": {"name": "ERROR_RATE_HIGH"}}).encode()
T = 1_718_000_000


def test_sign__stripe_style_header__timestamp_and_hex_hmac_sha256_of_timestamp_dot_body():
    header = sign(BODY, SECRET, T)

    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert SIGNATURE_HEADER == "X-Cutover-Signature"


def test_verify__signature_of_the_same_body_within_tolerance__valid():
    assert verify(BODY, sign(BODY, SECRET, T), SECRET, now=T + 299)


def test_verify__body_as_text__same_as_bytes():
    assert verify(BODY.decode(), sign(BODY, SECRET, T), SECRET, now=T)


def test_verify__tampered_body__invalid():
    tampered = BODY.replace(b"ERROR_RATE_HIGH", b"ALL_GOOD")
    assert not verify(tampered, sign(BODY, SECRET, T), SECRET, now=T)


def test_verify__other_secret__invalid():
    assert not verify(BODY, sign(BODY, SECRET, T), "another-secret-of-some-length", now=T)


def test_verify__timestamp_older_than_tolerance__invalid_so_a_captured_delivery_cannot_be_replayed():
    header = sign(BODY, SECRET, T)
    assert not verify(BODY, header, SECRET, now=T + 301)
    assert verify(BODY, header, SECRET, now=T + 301, tolerance_seconds=600)


def test_verify__timestamp_far_in_the_future__invalid():
    assert not verify(BODY, sign(BODY, SECRET, T + 3600), SECRET, now=T)


def test_verify__timestamp_swapped_into_a_valid_header__invalid():
    signature = sign(BODY, SECRET, T).split(",")[1]
    assert not verify(BODY, f"t={T + 10},{signature}", SECRET, now=T + 10)


@pytest.mark.parametrize("header", [None, "", "garbage", f"t={T}", "v1=abc", f"t=soon,v1={'0' * 64}",
                                    f"t={T},v1=", f"t={T},v0={'0' * 64}"])
def test_verify__missing_or_malformed_header__invalid_and_never_raises(header):
    assert verify(BODY, header, SECRET, now=T) is False


def test_verify__several_signatures_during_a_secret_rotation__one_match_is_enough():
    old = sign(BODY, "the-old-secret-0123456789", T).split(",")[1]
    new = sign(BODY, SECRET, T).split(",")[1]
    assert verify(BODY, f"t={T},{old},{new}", SECRET, now=T)


def test_verify__empty_secret__invalid():
    assert not verify(BODY, sign(BODY, SECRET, T), "", now=T)


def test_sign__empty_secret__refused():
    with pytest.raises(ValueError):
        sign(BODY, "", T)


def test_verify__default_now__uses_the_current_time():
    import time

    assert verify(BODY, sign(BODY, SECRET, int(time.time())), SECRET)
    assert not verify(BODY, sign(BODY, SECRET, int(time.time()) - 3600), SECRET)
