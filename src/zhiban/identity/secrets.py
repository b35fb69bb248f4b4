"""Password hashing (argon2) and API token minting (shown once, stored as a SHA-256 digest)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

_hasher = PasswordHasher()
TOKEN_PREFIX = "zb_"
MIN_PASSWORD = 10
MAX_PASSWORD = 256


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches; never raises for a wrong password."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


@cache
def dummy_hash() -> str:
    """A constant hash to verify against when the e-mail is unknown, so timing does not tell who exists.

    Made at the first unknown login, not at import: an argon2 hash costs ~0.1 s of CPU and 64 MiB, and every
    process that imports identity (each command, worker and web process) paid it at start."""
    return _hasher.hash("not-a-real-password")


def mint_token() -> tuple[str, str, str]:
    """A new token: (plain text shown once, lookup prefix, digest to store)."""
    prefix = secrets.token_hex(4)
    plain = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return plain, prefix, token_digest(plain)


def token_digest(plain: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast digest is enough (no need for argon2 here).
    return hashlib.sha256(plain.encode()).hexdigest()


def token_prefix(plain: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    if not plain.startswith(TOKEN_PREFIX):
        return None
    parts = plain[len(TOKEN_PREFIX) :].split("_", 1)
    if len(parts) != 2 or len(parts[0]) != 8:
        return None
    return parts[0]


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
