"""Detection in the running desk: the telemetry pipeline hands its closed windows to one engine per pipeline.

The engine's state lives in the process that owns the app's partitions (as the windows do); a restart
warms up again from the next windows (3 minutes). Rules are re-read from the database every few seconds.
Nothing here stops the stream: the engine isolates a failing key or window, and a failure to read rules
(the old ones stay) or to record events (kept, recorded with the next windows) is counted and logged the
same way (failures.py).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock
from zhiban.detect.detections import DetectionEvent
from zhiban.detect.engine import DetectionEngine, EngineOptions
from zhiban.detect.failures import FailureLog
from zhiban.detect.service import active_rules, organization_of_app, plan_of_organization, record_events

log = logging.getLogger("zhiban.detect")
RULES_EVERY_SECONDS = 10.0
PLAN_CACHE_SECONDS = 60.0
MAX_UNRECORDED = 10_000  # events kept while the database refuses them (the oldest go first)


class LiveDetection:
    """One engine fed by one pipeline; detections are stored and synced through jobs."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, options: EngineOptions | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.failures = FailureLog(clock, log)
        self.engine = DetectionEngine(options, plan_of=self._plan_of, on_failure=self.failures)
        self._unrecorded: list[DetectionEvent] = []
        self._rules_read = -1e18
        self._plans: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()
        self.recorded = 0

    def _plan_of(self, app_id: str) -> str | None:
        cached = self._plans.get(app_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.sessions() as session:
            plan = plan_of_organization(session, organization_of_app(session, app_id))
        if len(self._plans) > 10_000:
            self._plans.clear()
        self._plans[app_id] = (plan, now + PLAN_CACHE_SECONDS)
        return plan

    def refresh_rules(self) -> None:
        """Read the enabled rules now (and forget cached plans: a plan change applies at once)."""
        with self.sessions() as session:
            self.engine.set_rules(active_rules(session))
        self._plans.clear()
        self._rules_read = time.monotonic()

    def on_windows(self, windows: list[Any]) -> int:
        """Detect over closed windows; store what happened. Returns the number of events recorded."""
        with self._lock:
            if time.monotonic() - self._rules_read >= RULES_EVERY_SECONDS:
                try:
                    self.refresh_rules()
                except Exception as exc:  # keep detecting with the rules read last
                    self._rules_read = time.monotonic()
                    self.failures("rules_read:" + type(exc).__name__, exc)
            events = self._unrecorded + self.engine.process(windows)
            if not events:
                return 0
            try:
                with self.sessions() as session, session.begin():
                    record_events(session, self.clock, events)
            except Exception as exc:  # recorded with the next windows (idempotent by detection key)
                self._unrecorded = events[-MAX_UNRECORDED:]
                self.failures("record:" + type(exc).__name__, exc)
                return 0
            self._unrecorded = []
            self.recorded += len(events)
            return len(events)


_live: weakref.WeakKeyDictionary[Any, LiveDetection] = weakref.WeakKeyDictionary()
_live_lock = threading.Lock()


def live_for(pipeline: Any) -> LiveDetection:
    """The detection fed by this pipeline (created on first use)."""
    with _live_lock:
        found = _live.get(pipeline)
        if found is None:
            found = _live[pipeline] = LiveDetection(pipeline.sessions, pipeline.clock)
        return found


def windows_closed(pipeline: Any, windows: list[Any]) -> None:
    """The pipeline's listener (registered by detect.hooks)."""
    live_for(pipeline).on_windows(windows)
