"""zhiban's webhook signature header: round trip, tampering, time window, malformed headers."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from zhiban.notify.signing import verify_webhook_signature, webhook_signature_header

SECRET = "s3cret-for-tests"
NOW = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
T = int(NOW.timestamp())


def test_header_format_is_t_and_hex_hmac_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + body, hashlib.sha256).hexdigest()
    assert webhook_signature_header(SECRET, body, T) == f"t={T},v1={expected}"


def test_verification_window_is_symmetric_and_inclusive() -> None:
    header = webhook_signature_header(SECRET, b"x", T)
    five = timedelta(minutes=5)
    assert verify_webhook_signature(SECRET, header, b"x", NOW + five, five)
    assert verify_webhook_signature(SECRET, header, b"x", NOW - five, five)
    assert not verify_webhook_signature(SECRET, header, b"x", NOW + five + timedelta(seconds=1), five)
    assert not verify_webhook_signature(SECRET, header, b"x", NOW - five - timedelta(seconds=1), five)


def test_any_of_several_v1_values_may_match_during_secret_rotation() -> None:
    good = webhook_signature_header(SECRET, b"x", T).split("v1=")[1]
    assert verify_webhook_signature(SECRET, f"t={T},v1={'0' * 64},v1={good}", b"x", NOW)
    assert not verify_webhook_signature(SECRET, f"t={T},v1={'0' * 64}", b"x", NOW)


def test_missing_parts_fail() -> None:
    good = webhook_signature_header(SECRET, b"x", T)
    assert not verify_webhook_signature(SECRET, good.split(",")[1], b"x", NOW)  # no t
    assert not verify_webhook_signature(SECRET, good.split(",")[0], b"x", NOW)  # no v1
    assert not verify_webhook_signature("", good, b"x", NOW)
    assert not verify_webhook_signature(SECRET, "t=abc,v1=00", b"x", NOW)


@given(st.text(max_size=300), st.binary(max_size=100))
def test_garbage_headers_never_verify_and_never_raise(header: str, body: bytes) -> None:
    assert verify_webhook_signature(SECRET, header, body, NOW) is False
