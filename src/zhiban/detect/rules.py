"""Explicit rules, as vendors sell them per plan: "join success under 99 % for 2 windows of 1 minute".

A rule names a metric of TELEMETRY.md §3, a comparison with a threshold, a window length (a multiple of
the 10 s aggregation window; shorter windows are merged into it) and how many consecutive windows must
breach. It applies to the apps of organizations on `plan` (or to one `app_id`, or to every app when
neither is given). A window with fewer than `min_sessions` sessions neither breaches nor clears.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from zhiban.core.errors import InvalidInput
from zhiban.detect.detections import METRIC_SPECS, Detection, DetectionEvent, metric_value, severity_for
from zhiban.telemetry.qoe import METRIC_BY_NAME
from zhiban.telemetry.window import WindowAggregate, merge

Comparison = Literal["below", "above"]
RULE_METRICS = tuple(name for name in METRIC_BY_NAME)
MAX_RULES = 500
Localizer = Callable[[str, int], tuple[dict[str, str], list[dict[str, object]]]]


@dataclass(frozen=True)
class Rule:
    """One explicit rule (validated on construction)."""

    name: str
    metric: str
    comparison: Comparison
    threshold: float
    window_seconds: int = 60
    consecutive: int = 2
    min_sessions: int = 20
    plan: str | None = None
    app_id: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 1 <= len(self.name) <= 100:
            raise InvalidInput("a rule name has 1-100 characters")
        if self.metric not in RULE_METRICS:
            raise InvalidInput(f"unknown metric {self.metric!r}; known: {', '.join(RULE_METRICS)}")
        if self.comparison not in ("below", "above"):
            raise InvalidInput("comparison must be 'below' or 'above'")
        if not -1e12 < self.threshold < 1e12:
            raise InvalidInput("threshold must be a finite number")
        if not 10 <= self.window_seconds <= 3600 or self.window_seconds % 10:
            raise InvalidInput("window_seconds must be a multiple of 10 within 10..3600")
        if not 1 <= self.consecutive <= 100:
            raise InvalidInput("consecutive must be within 1..100")
        if not 1 <= self.min_sessions <= 1_000_000:
            raise InvalidInput("min_sessions must be within 1..1000000")
        if self.plan is not None and not 1 <= len(self.plan) <= 64:
            raise InvalidInput("plan must be 1-64 characters")
        if self.app_id is not None and not 1 <= len(self.app_id) <= 64:
            raise InvalidInput("app_id must be 1-64 characters")

    def applies_to(self, app_id: str, plan: str | None) -> bool:
        if not self.enabled:
            return False
        if self.app_id is not None and self.app_id != app_id:
            return False
        return self.plan is None or (plan is not None and self.plan.lower() == plan.lower())

    def breached(self, value: float) -> bool:
        return value < self.threshold if self.comparison == "below" else value > self.threshold

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        """A rule from its JSON form (the API's and the replay file's)."""
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - allowed
        if unknown:
            raise InvalidInput(f"unknown rule fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidInput(f"bad rule: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass
class _RuleState:
    bucket_start: datetime | None = None
    bucket: WindowAggregate | None = None
    streak: int = 0
    clean: int = 0
    clean_since: datetime | None = None
    open: Detection | None = None
    last: dict[str, float] = field(default_factory=dict)


class RuleTracker:
    """Evaluates the rules on the app-wide windows; one state per (rule, app), bounded."""

    MAX_STATES = 100_000

    def __init__(self, rules: Sequence[Rule], plan_of: Callable[[str], str | None], clear_windows: int) -> None:
        self.plan_of = plan_of
        self.clear_windows = clear_windows
        self.rules: list[Rule] = []
        self.states: dict[tuple[str, str], _RuleState] = {}
        self.set_rules(rules)

    def set_rules(self, rules: Sequence[Rule]) -> None:
        if len(rules) > MAX_RULES:
            raise InvalidInput(f"at most {MAX_RULES} rules")
        self.rules = list(rules)
        names = {r.name for r in self.rules}
        self.states = {k: v for k, v in self.states.items() if k[0] in names}

    def open_detections(self) -> list[Detection]:
        return [s.open for s in self.states.values() if s.open is not None]

    def step(self, window: WindowAggregate, end: datetime, localizer: Localizer) -> list[DetectionEvent]:
        """Add one app-wide window to every applicable rule; return rule detections opened or closed."""
        if not self.rules:
            return []
        app_id = window.key.app_id
        plan = self.plan_of(app_id)
        events: list[DetectionEvent] = []
        for rule in self.rules:
            if not rule.applies_to(app_id, plan):
                continue
            key = (rule.name, app_id)
            state = self.states.get(key)
            if state is None:
                if len(self.states) >= self.MAX_STATES:
                    continue
                state = self.states[key] = _RuleState()
            epoch = int(window.window_start.timestamp())
            bucket_start = window.window_start - timedelta(seconds=epoch % rule.window_seconds)
            if state.bucket_start != bucket_start:
                state.bucket_start, state.bucket = bucket_start, window
            else:
                assert state.bucket is not None
                state.bucket = merge(state.bucket, window)
            if end < bucket_start + timedelta(seconds=rule.window_seconds):
                continue
            bucket, state.bucket, state.bucket_start = state.bucket, None, None
            assert bucket is not None
            event = self._evaluate(rule, state, bucket, bucket_start, end, localizer)
            if event is not None:
                events.append(event)
        return events

    def _evaluate(
        self,
        rule: Rule,
        state: _RuleState,
        bucket: WindowAggregate,
        bucket_start: datetime,
        end: datetime,
        localizer: Localizer,
    ) -> DetectionEvent | None:
        value = bucket.metrics().get(rule.metric)
        sessions = bucket.sessions
        if value is None or sessions < rule.min_sessions:
            return None
        spec = METRIC_SPECS.get(rule.metric)
        if rule.breached(value):
            state.streak += 1
            state.clean, state.clean_since = 0, None
            if state.open is not None:
                state.open.sessions = max(state.open.sessions, sessions)
                return None
            if state.streak < rule.consecutive:
                return None
            width = timedelta(seconds=rule.window_seconds)
            windows = min(6, rule.consecutive * rule.window_seconds // 10)
            slice_, candidates = localizer(rule.metric, windows) if spec is not None else ({}, [])
            severity = (
                severity_for(spec, sessions, metric_value(spec, rule.threshold), metric_value(spec, value))
                if spec is not None
                else "major"
            )
            state.open = Detection(
                app_id=bucket.key.app_id,
                metric=rule.metric,
                direction="down" if rule.comparison == "below" else "up",
                opened_at=bucket_start - (rule.consecutive - 1) * width,
                detected_at=end,
                slice=slice_,
                baseline=rule.threshold,
                observed=value,
                sessions=sessions,
                severity=severity,
                rule=rule.name,
                trigger=bucket.key.app_id,
                candidates=candidates,
            )
            return DetectionEvent("opened", state.open)
        state.streak = 0
        if state.open is None:
            return None
        if state.clean == 0:
            state.clean_since = bucket_start
        state.clean += 1
        if state.clean < self.clear_windows:
            return None
        detection, state.open = state.open, None
        detection.closed_at = state.clean_since
        state.clean, state.clean_since = 0, None
        return DetectionEvent("closed", detection)
