"""Request signatures: zhiban's own webhook header, and the Feishu and DingTalk robot signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

SIGNATURE_HEADER = "X-Zhiban-Signature"
EVENT_HEADER = "X-Zhiban-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_SIGNATURE_HEADER = 2_000


def webhook_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}.{body}" under the secret."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Zhiban-Signature value: `t=<unix seconds>,v1=<hex>`."""
    return f"t={timestamp},v1={webhook_signature(secret, body, timestamp)}"


def verify_webhook_signature(
    secret: str, header: str, body: bytes, now: datetime, tolerance: timedelta = timedelta(minutes=5)
) -> bool:
    """True when the header signs this body with this secret and its time is within tolerance of now."""
    if not secret or len(header) > MAX_SIGNATURE_HEADER:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    # Several v1 entries may appear while a receiver rotates secrets; any match will do.
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        return False
    expected = webhook_signature(secret, body, timestamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def feishu_sign(secret: str, timestamp: int) -> str:
    """Feishu custom bot sign: base64 of HMAC-SHA256 keyed by f"{timestamp}\\n{secret}" over an empty message."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk robot sign before URL-encoding: base64 of HMAC-SHA256(secret, f"{timestamp_ms}\\n{secret}")."""
    message = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
