"""Customer apps and their ingest keys: the pure rules (id format, key format)."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

from zhiban.core.errors import InvalidInput

# An app id is what SDKs put in every report's `app_id`: a short, stable slug.
APP_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
# Ingest keys look like `zbi_<8 hex lookup prefix>_<secret>`; distinct from API tokens (`zb_…`), which act
# for a person, while an ingest key only lets a machine send telemetry for one app.
KEY_PREFIX: Final = "zbi_"
LOOKUP_LEN: Final = 8
MAX_KEY_LEN: Final = 200


def check_app_id(app_id: str) -> str:
    """The app id if well formed, else InvalidInput."""
    if not APP_ID_RE.match(app_id):
        raise InvalidInput("app_id must be 2–64 lowercase letters, digits, '-' or '_', starting with a letter or digit")
    return app_id


def key_digest(plain: str) -> str:
    """SHA-256 of an ingest key (keys carry 256 random bits, so a fast digest is enough)."""
    return hashlib.sha256(plain.encode()).hexdigest()


def key_lookup(plain: str) -> str | None:
    """The lookup prefix of a well-formed ingest key, else None."""
    if not plain.startswith(KEY_PREFIX) or len(plain) > MAX_KEY_LEN:
        return None
    lookup, sep, secret = plain[len(KEY_PREFIX) :].partition("_")
    if not sep or len(lookup) != LOOKUP_LEN or not secret:
        return None
    return lookup


def digests_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(a, b)


@dataclass(frozen=True)
class IngestIdentity:
    """Who an accepted ingest key speaks for."""

    app_id: str
    organization_id: str
