"""What the live desk does with a failure the detection engine isolated: count it in /metrics, log it sparingly.

The engine skips the key, metric or window that raised and goes on (engine.py); a bug that hits every
window would otherwise write a traceback every 10 s. So each cause is logged at most once per `every`
(one minute), with its traceback the first time and, later, how many were left unsaid since; every one
is counted in `zhiban_detect_failures_total{cause}`. Time comes from an injected clock.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter

from zhiban.core.clock import Clock
from zhiban.core.metrics import REGISTRY

FAILURES = Counter(
    "zhiban_detect_failures_total",
    "Detection steps that raised and were skipped while every other key kept being watched, by cause "
    "(stage:exception type)",
    ["cause"],
    registry=REGISTRY,
)
LOG_EVERY = timedelta(minutes=1)
MAX_TRACKED = 256  # causes whose last log time is remembered (the engine bounds its causes further)


@dataclass
class _Logged:
    at: datetime
    unsaid: int = 0


class FailureLog:
    """A failure sink for DetectionEngine: counts every failure, logs each cause at most once per `every`."""

    def __init__(self, clock: Clock, log: logging.Logger, every: timedelta = LOG_EVERY) -> None:
        self.clock = clock
        self.log = log
        self.every = every
        self._logged: dict[str, _Logged] = {}
        self._lock = threading.Lock()

    def __call__(self, cause: str, exc: BaseException) -> None:
        FAILURES.labels(cause).inc()
        now = self.clock.now()
        with self._lock:
            seen = self._logged.get(cause)
            if seen is None:
                if len(self._logged) >= MAX_TRACKED:
                    self._logged.clear()
                self._logged[cause] = _Logged(now)
                first, unsaid = True, 0
            elif now - seen.at >= self.every:
                first, unsaid = False, seen.unsaid
                seen.at, seen.unsaid = now, 0
            else:
                seen.unsaid += 1
                return
        if first:
            self.log.error("detection failed (%s); skipped, the other keys are still watched", cause, exc_info=exc)
        else:
            self.log.error("detection still failing (%s): %s; %d more since the last log", cause, exc, unsaid)
