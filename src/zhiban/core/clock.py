"""The clock: domain code takes one; only the edges read the real time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time, timezone-aware, in UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock; used by the edges (web, CLI, worker)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told: for tests and replays."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward and return the new time."""
        if delta < timedelta(0):
            raise ValueError("time does not run backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump to a moment (aware)."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        with self._lock:
            self._now = moment.astimezone(UTC)


def utc(moment: datetime) -> datetime:
    """Return an aware datetime in UTC; refuse naive ones rather than guess their zone."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a zone is required")
    return moment.astimezone(UTC)
