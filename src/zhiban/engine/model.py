"""Pure rules of the job engine: states, limits, validation and retry backoff."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from zhiban.core.errors import InvalidInput

MAX_KIND_LENGTH = 100
MAX_DEDUP_KEY_LENGTH = 200
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ERROR_LENGTH = 4000
MAX_ATTEMPTS_LIMIT = 100
MAX_LIST_LIMIT = 1000

_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_.:\-]*$")


class JobState(StrEnum):
    """Where a job is in its life: waiting, held by a worker, finished, or given up."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


def check_kind(kind: str) -> str:
    """Refuse a job kind that is empty, too long or not a dotted lower-case name."""
    if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LENGTH or not _KIND_RE.match(kind):
        raise InvalidInput(f"job kind must match [a-z0-9][a-z0-9_.:-]* and be at most {MAX_KIND_LENGTH} characters")
    return kind


def check_dedup_key(dedup_key: str | None) -> str | None:
    """Refuse an empty or over-long deduplication key (None means no deduplication)."""
    if dedup_key is None:
        return None
    if not isinstance(dedup_key, str) or not dedup_key or len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
        raise InvalidInput(f"dedup_key must be 1..{MAX_DEDUP_KEY_LENGTH} characters")
    return dedup_key


def check_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Refuse a payload that is not a JSON object or is larger than MAX_PAYLOAD_BYTES."""
    if not isinstance(payload, dict):
        raise InvalidInput("job payload must be a JSON object")
    try:
        encoded = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"job payload is not JSON-serializable: {exc}") from exc
    if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"job payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    return payload


def check_max_attempts(max_attempts: int) -> int:
    """Refuse an attempt budget outside 1..MAX_ATTEMPTS_LIMIT."""
    if (
        isinstance(max_attempts, bool)
        or not isinstance(max_attempts, int)
        or not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT
    ):
        raise InvalidInput(f"max_attempts must be an integer in 1..{MAX_ATTEMPTS_LIMIT}")
    return max_attempts


def check_moment(name: str, moment: datetime) -> datetime:
    """Refuse a naive datetime: a due time without a zone is ambiguous."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime")
    return moment


def check_limit(limit: int) -> int:
    """Refuse a listing limit outside 1..MAX_LIST_LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit must be an integer in 1..{MAX_LIST_LIMIT}")
    return limit


def backoff_ceiling(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """The largest wait after failed attempt `attempt` (1-based): base·2^(attempt-1), at most cap."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    # The exponent is clamped so that a large attempt count cannot overflow timedelta.
    grown = base.total_seconds() * 2.0 ** min(attempt - 1, 62)
    return timedelta(seconds=min(grown, cap.total_seconds()))


def retry_delay(attempt: int, base: timedelta, cap: timedelta, rng: random.Random) -> timedelta:
    """Full-jitter backoff: a uniform wait in [0, backoff_ceiling] so retries of many jobs spread out."""
    ceiling = backoff_ceiling(attempt, base, cap).total_seconds()
    return timedelta(seconds=rng.uniform(0.0, ceiling))


def bounded_error(text: str) -> str:
    """Keep the end of an error text (a traceback's last lines say most) within MAX_ERROR_LENGTH."""
    if len(text) <= MAX_ERROR_LENGTH:
        return text
    return "…" + text[-(MAX_ERROR_LENGTH - 1) :]
