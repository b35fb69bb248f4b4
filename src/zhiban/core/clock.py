"""The clock: domain code takes one; only the edges read the real time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from zhiban.core.errors import InvalidInput


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


class StartedClock:
    """A test clock for real processes: it read `start` at the real moment `anchor`, and runs at real speed.

    Every process of one deployment given the same start and anchor tells the same time, whenever it began
    (a worker restarted after a crash does not fall behind the web process).
    """

    def __init__(self, start: datetime, anchor: datetime) -> None:
        if start.tzinfo is None or anchor.tzinfo is None:
            raise ValueError("StartedClock needs timezone-aware moments")
        # Real time since the anchor is measured on the monotonic clock: a wall-clock step does not move it.
        self._origin = start.astimezone(UTC) + (datetime.now(UTC) - anchor.astimezone(UTC))
        self._since = time.monotonic()

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=time.monotonic() - self._since)


TEST_CLOCK_REFUSED = "ZHIBAN_CLOCK_START is set but ZHIBAN_ALLOW_TEST_CLOCK is not: refusing to run on a test clock"


def clock_from(start: str, anchor: str = "", *, allowed: bool = False) -> Clock:
    """The process's clock: the real one, or (tests only) a `StartedClock` at `start` as of the real `anchor`.

    `start` and `anchor` are ISO 8601 with an offset; an empty anchor means now (this process's start).
    """
    if not start:
        return SystemClock()
    if not allowed:
        raise InvalidInput(TEST_CLOCK_REFUSED)
    moments = []
    for name, text in (("ZHIBAN_CLOCK_START", start), ("ZHIBAN_CLOCK_ANCHOR", anchor)):
        if not text:
            moments.append(datetime.now(UTC))
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{name} {text!r} is not an ISO 8601 time, e.g. 2026-12-12T03:00:00+08:00") from None
        if moment.tzinfo is None:
            raise InvalidInput(f"{name} {text!r} needs an offset, e.g. +08:00")
        moments.append(moment)
    return StartedClock(moments[0], moments[1])


def utc(moment: datetime) -> datetime:
    """Return an aware datetime in UTC; refuse naive ones rather than guess their zone."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a zone is required")
    return moment.astimezone(UTC)
