"""Streaming detection over closed windows: per key tests, one detection per (app, metric), localization.

`DetectionEngine.process(windows)` takes closed WindowAggregates (any grouping; every window of one app
and one start must arrive together, as the aggregator closes them) and returns what happened: detections
opened, made worse or sharper, closed. Event time only: the same windows give the same detections, live or replayed.

Per app and window: every key (the app, and each app × dimension value) is tested per contract metric
(seasonal.KeyState). A detection of (app, metric) opens when the app-wide key alarms, or a slice key
alarms (a fault too small to move the whole app); it is localized from the same windows (base = each
slice's baseline, obs = the alarming windows). Rare events give too little evidence for that at first
(join failures of a release on 59 % of the joins), so for its first `refine_windows` windows the
detection gathers every slice's counts and localizes again each window: a sharper slice found on two
windows in a row replaces its slice (never a different one), and the detection says when (`refined_at`;
`opened_at` and `detected_at` stay those of the first detection). It closes after `clear_windows` clean
windows in a row on the keys it watches (hysteresis), or after a long silence. Explicit rules (rules.py)
run beside it. Key state is bounded: least recently seen keys are forgotten past `max_keys`.

A detector that never dies: an exception while measuring one key, tracking one metric, localizing, running
the rules, learning one key or stepping one app window is isolated there. The key, metric or window sits
this one out, everything else goes on, and the failure is counted (`failures`, by cause) and handed to
`on_failure` (the live desk counts it in /metrics and logs it, see failures.py). A failed localization
still opens the detection, on the key that alarmed. A counter that is not a finite, non-negative number
(NaN, inf) counts as not measured.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from zhiban.core.errors import InvalidInput
from zhiban.detect.detections import (
    CONTRACT_METRICS,
    MOS_CEILING,
    Detection,
    DetectionEvent,
    MetricSpec,
    metric_value,
    severity_for,
    worse,
)
from zhiban.detect.localize import SliceStats, localize
from zhiban.detect.rules import Rule, RuleTracker
from zhiban.detect.seasonal import (
    LEAN_Z,
    QUANTILE_INDEX,
    RECENT,
    DetectorOptions,
    KeyState,
    MetricWindow,
    effect_ok,
    sketch_counts,
    sketch_histogram,
    still_bad,
    z_score,
)
from zhiban.telemetry.sketch import QuantileSketch
from zhiban.telemetry.window import SliceKey, WindowAggregate

KeyId = tuple[str, str | None, str | None]
FailureSink = Callable[[str, BaseException], None]
_PAIRS = (("video_freeze_ms", "video_active_ms"), ("audio_freeze_ms", "audio_active_ms"),
          ("join_successes", "join_attempts"), ("mos_sum", "mos_count"))  # fmt: skip
MAX_CAUSES = 64  # distinct failure causes kept apart (a label of /metrics); the rest are "other"


@dataclass(frozen=True)
class EngineOptions:
    """Bounds and hysteresis of the engine; `detector` tunes the per-key tests."""

    detector: DetectorOptions = field(default_factory=DetectorOptions)
    clear_windows: int = 3  # clean windows in a row that close a detection
    silence_windows: int = 30  # windows without traffic on the watched keys that close it anyway
    max_keys: int = 8192
    max_localize_windows: int = 9
    refine_windows: int = 30  # windows after opening during which the slice may sharpen (5 minutes)

    def __post_init__(self) -> None:
        if not 1 <= self.clear_windows <= 360 or not 1 <= self.silence_windows <= 10_000:
            raise InvalidInput("clear_windows within 1..360 and silence_windows within 1..10000")
        if not 16 <= self.max_keys <= 1_000_000:
            raise InvalidInput("max_keys within 16..1000000")
        if not 0 <= self.refine_windows <= 360:
            raise InvalidInput("refine_windows within 0..360")


@dataclass
class _Open:
    """An open detection and what the engine tracks to update and close it."""

    detection: Detection
    watch: list[KeyId]
    report: KeyId  # the key whose windows say when it is over
    num: float = 0.0
    den: float = 0.0
    values: list[float] = field(default_factory=list)
    clean: int = 0
    clean_since: datetime | None = None
    silent: int = 0
    # Per slice key, badness and denominator since the first window of the detection (for refining), and
    # its baseline as it was at opening: slices keep learning meanwhile (small ones learn every window
    # while they warm up), so their baseline would soon hold the fault itself.
    evidence: dict[KeyId, list[float]] = field(default_factory=dict)
    baselines: dict[KeyId, tuple[float, float]] = field(default_factory=dict)
    age: int = 0  # windows followed since it opened
    pending: dict[str, str] | None = None  # a sharper slice found once, to be confirmed by the next window
    # The sharper slice's key once refined: the detection reports its numbers, but still closes on `report`
    # (a region an outage emptied must not hold open a detection that the whole app saw recover).
    shown: KeyId | None = None


def _measured(window: WindowAggregate) -> WindowAggregate:
    """The window, with any counter that is not a finite, non-negative number read as not measured (0): one
    inf would otherwise become a key's baseline for good, or a rule's observed value."""
    counters = window.counters
    if all(math.isfinite(v) and v >= 0 for v in counters.values()):
        return window
    clean = {k: (v if math.isfinite(v) and v >= 0 else 0.0) for k, v in counters.items()}
    for pair in _PAIRS:  # a ratio whose one side is not measured is not measured: frozen ms without active ms
        if any(k in counters and clean[k] != counters[k] for k in pair):
            clean.update(dict.fromkeys((k for k in pair if k in clean), 0.0))
    return replace(window, counters=clean)


def _key_id(key: SliceKey) -> KeyId:
    return (key.app_id, key.dimension, key.value)


def _label(key: KeyId) -> str:
    return key[0] if key[1] is None else f"{key[0]} {key[1]}={key[2]}"


def _baseline(state: KeyState, i: int, threshold: int) -> tuple[float, float]:
    """A slice's baseline badness and denominator; for a quantile metric, its reports above the app's p95 bin."""
    spec = CONTRACT_METRICS[i]
    if spec.kind == "quantile":
        hist = state.hist[QUANTILE_INDEX[spec.name]]
        return float(hist[threshold + 1 :].sum()), float(hist.sum())
    return float(state.base_num[i]), float(state.base_den[i])


class DetectionEngine:
    """Detects, localizes and tracks departures of the contract metrics over closed windows."""

    def __init__(
        self,
        options: EngineOptions | None = None,
        *,
        rules: Sequence[Rule] = (),
        plan_of: Callable[[str], str | None] | None = None,
        on_failure: FailureSink | None = None,
    ) -> None:
        self.options = options or EngineOptions()
        self.failures: Counter[str] = Counter()  # isolated failures by cause (stage:exception type)
        self.on_failure = on_failure
        self.keys: OrderedDict[KeyId, KeyState] = OrderedDict()
        self.open: dict[tuple[str, str], _Open] = {}
        self.rules = RuleTracker(rules, plan_of or (lambda app_id: None), self.options.clear_windows)
        self.windows_seen = 0
        self.evicted = 0
        self._alpha = 1.0 / self.options.detector.baseline_windows

    # -- input -----------------------------------------------------------------------------------------
    def process(self, windows: Iterable[WindowAggregate]) -> list[DetectionEvent]:
        """Run every closed window through the detectors, in event-time order per app."""
        groups: dict[tuple[datetime, str], list[WindowAggregate]] = {}
        for window in windows:
            groups.setdefault((window.window_start, window.key.app_id), []).append(window)
        events: list[DetectionEvent] = []
        for start, app_id in sorted(groups):
            try:
                events.extend(self._step(app_id, start, groups[(start, app_id)]))
            except Exception as exc:  # this app's window is lost; the other apps' go on
                self._failed("window", exc)
        return events

    def _failed(self, stage: str, exc: Exception) -> None:
        """Count an isolated failure and tell the sink (which must not raise either)."""
        cause = f"{stage}:{type(exc).__name__}"
        if cause not in self.failures and len(self.failures) >= MAX_CAUSES:
            cause = f"{stage}:other"
        self.failures[cause] += 1
        if self.on_failure is not None:
            with contextlib.suppress(Exception):  # a broken sink must not stop detection; the count above stays
                self.on_failure(cause, exc)

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Replace the explicit rules (state of rules that remain is kept)."""
        self.rules.set_rules(rules)

    def open_detections(self) -> list[Detection]:
        return [o.detection for o in self.open.values()] + self.rules.open_detections()

    # -- keys ------------------------------------------------------------------------------------------
    def _state(self, key: KeyId) -> KeyState:
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = KeyState(seasonal=key[1] is None)
            while len(self.keys) > self.options.max_keys:
                self.keys.popitem(last=False)
                self.evicted += 1
        else:
            self.keys.move_to_end(key)
        return state

    def _measure(
        self, state: KeyState, spec: MetricSpec, i: int, window: WindowAggregate, app_threshold: int | None
    ) -> tuple[MetricWindow, QuantileSketch | None]:
        """The window's badness for one metric on one key, tested against the key's baselines."""
        options = self.options.detector
        c = window.counters
        sketch = None
        if spec.kind == "quantile":
            # Counts above the p95 bins read straight off the sketch; its histogram is only built to learn.
            sketch = window.sketches[spec.sketch]
            den, num, num_app = sketch_counts(sketch, state.p95_threshold(i), app_threshold)
            value = sketch.quantile(0.95) or 0.0  # (window.p95)
        elif spec.kind == "impairment":
            den = c["mos_count"]
            num = max(0.0, MOS_CEILING * den - c["mos_sum"])
            num_app, value = num, (num / den if den > 0 else 0.0)
        elif spec.name == "join_success_rate":
            den = c["join_attempts"]
            num = max(0.0, den - c["join_successes"])
            num_app, value = num, (num / den if den > 0 else 0.0)
        else:
            num, den = c[spec.counter_num], c[spec.counter_den]
            num_app, value = num, (num / den if den > 0 else 0.0)
        needed = options.min_sessions if window.key.dimension is None else options.slice_min_sessions
        volume = window.sessions >= needed and den > 0
        baseline = state.baseline_value(i)
        z = 0.0
        effect = False
        if volume and state.warm(i, options):
            p0 = state.p0(i)
            z = z_score(num, den, p0, float(state.dispersion[i]))
            effect = effect_ok(spec, value, baseline)
            seasonal = state.seasonal(i, window.window_start, options)
            state.season_ref[i] = np.nan if seasonal is None else seasonal[0]
            if seasonal is not None:
                reference = seasonal[0]
                # Departing from today's recent normal is not enough: also from this hour's usual self.
                if spec.kind == "quantile":
                    effect = effect and effect_ok(spec, value, reference)
                else:
                    z_season = z_score(num, den, reference, float(state.dispersion[i]))
                    z = min(z, z_season)
                    effect = effect and effect_ok(spec, value, reference)
        return MetricWindow(num, den, value, z, effect, volume, baseline, num_app), sketch

    # -- one app window ----------------------------------------------------------------------------------
    def _step(self, app_id: str, start: datetime, windows: list[WindowAggregate]) -> list[DetectionEvent]:
        options = self.options.detector
        self.windows_seen += len(windows)
        windows = sorted(map(_measured, windows), key=lambda w: w.key.sort_key())
        app_window = next((w for w in windows if w.key.dimension is None), None)
        if app_window is None:
            return []
        end = start + timedelta(seconds=app_window.window_seconds)
        states = {_key_id(w.key): self._state(_key_id(w.key)) for w in windows}
        app_key: KeyId = (app_id, None, None)
        app_state = states[app_key]
        measured: dict[KeyId, list[tuple[MetricWindow, QuantileSketch | None]]] = {}
        thresholds = [
            app_state.p95_threshold(i) if s.kind == "quantile" else None for i, s in enumerate(CONTRACT_METRICS)
        ]
        for window in windows:
            key = _key_id(window.key)
            state = states[key]
            try:
                row = [self._measure(state, spec, i, window, thresholds[i]) for i, spec in enumerate(CONTRACT_METRICS)]
            except Exception as exc:  # this key sits the window out; the others are watched
                self._failed("measure", exc)
                continue
            for i, (mw, _) in enumerate(row):
                state.remember(i, mw, window.sessions)
            measured[key] = row
        states = {key: states[key] for key in measured}
        events: list[DetectionEvent] = []
        for i, spec in enumerate(CONTRACT_METRICS):
            try:
                events.extend(self._track(app_id, i, spec, start, end, states, measured))
            except Exception as exc:  # this metric skips the window; the others are tracked
                self._failed("track", exc)
        try:
            events.extend(self.rules.step(app_window, end, lambda metric, n: self._localize(app_id, metric, n, states)))
        except Exception as exc:
            self._failed("rules", exc)
        # Learn from clean windows only, and never on keys an open detection watches.
        for key, row in measured.items():
            state = states[key]
            try:
                for i, (mw, sketch) in enumerate(row):
                    if not mw.volume:
                        continue
                    state.learn_season(i, mw, start)
                    if state.frozen[i]:
                        continue
                    if not state.warm(i, options) or (mw.z < options.watch_z and not mw.effect):
                        hist = sketch_histogram(sketch) if sketch is not None else None
                        state.teach(i, mw, hist, self._alpha, options)
            except Exception as exc:
                self._failed("learn", exc)
            finally:
                state.advance()  # the ring of recent windows stays aligned whatever happened
        return events

    def _alarmed(self, key: KeyId, state: KeyState, i: int) -> int:
        """Windows of evidence behind an alarm on this key (0: no alarm)."""
        options = self.options.detector
        return state.alarm(i, options.app_alarm if key[1] is None else options.slice_alarm, options)

    def _track(
        self,
        app_id: str,
        i: int,
        spec: MetricSpec,
        start: datetime,
        end: datetime,
        states: dict[KeyId, KeyState],
        measured: dict[KeyId, list[tuple[MetricWindow, QuantileSketch | None]]],
    ) -> list[DetectionEvent]:
        current = self.open.get((app_id, spec.name))
        if current is None:
            # Only keys whose newest window leans the bad way can alarm now (saves most of the pooling).
            leaning = [k for k in states if (mw := measured[k][i][0]).volume and mw.effect and mw.z >= LEAN_Z]
            alarmed = {k: n for k in leaning if (n := self._alarmed(k, states[k], i))}
            app_state = states.get((app_id, None, None))
            support = self.options.detector.slice_support
            # A slice alone is believed only if the whole app leans the same way over the same windows:
            # among dozens of slices, one will sometimes stray by chance.
            alarmed = {
                k: n
                for k, n in alarmed.items()
                if k[1] is None or (app_state is not None and app_state.pooled_z(i, n) >= support)
            }
            if not alarmed:
                return []
            return [self._open(app_id, i, spec, start, end, alarmed, states)]
        return self._continue(current, app_id, i, spec, start, end, states, measured)

    def _open(
        self,
        app_id: str,
        i: int,
        spec: MetricSpec,
        start: datetime,
        end: datetime,
        alarmed: dict[KeyId, int],
        states: dict[KeyId, KeyState],
    ) -> DetectionEvent:
        app_key: KeyId = (app_id, None, None)
        # The app-wide key first; else the slice that alarmed on the fewest windows (the clearest step).
        trigger = app_key if app_key in alarmed else min(alarmed, key=lambda k: (alarmed[k], _label(k)))
        run = int(min(alarmed[trigger], self.options.max_localize_windows))
        found, candidates = self._localize(app_id, spec.name, run, states)
        slice_ = found or ({trigger[1]: trigger[2]} if trigger[1] is not None and trigger[2] is not None else {})
        report = self._report_key(app_id, slice_, states, i) or trigger
        state = states.get(report) or states[trigger]
        pooled = state.pooled(i, run)
        baseline = state.baseline_value(i)
        if spec.kind == "quantile":
            values = state.last_values(i, run)
            observed = statistics.median(values)
        else:
            values = []
            observed = pooled[0] / pooled[1] if pooled[1] > 0 else 0.0
        sessions = int(max(state.recent[i, :, 4].max(), 0))
        detection = Detection(
            app_id=app_id,
            metric=spec.name,
            direction=spec.direction,
            opened_at=start - timedelta(seconds=(run - 1) * (end - start).total_seconds()),
            detected_at=end,
            slice=slice_,
            baseline=metric_value(spec, baseline),
            observed=metric_value(spec, observed),
            sessions=sessions,
            severity=severity_for(spec, sessions, baseline, observed),
            trigger=_label(trigger),
            candidates=candidates,
        )
        watch = sorted({app_key, report}, key=lambda k: (k[1] or "", k[2] or ""))
        threshold = states[app_key].p95_threshold(i) if spec.kind == "quantile" else 0
        opened = _Open(detection, watch, report, float(pooled[0]), float(pooled[1]), list(values))
        for key, key_state in states.items():
            if key[1] is not None:
                seen = key_state.pooled(i, run)
                opened.evidence[key] = [float(seen[3]), float(seen[1])]
                opened.baselines[key] = _baseline(key_state, i, threshold)
        self.open[(app_id, spec.name)] = opened
        for key in watch:
            if key in self.keys:
                self.keys[key].frozen[i] = True
        return DetectionEvent("opened", detection)

    def _continue(
        self,
        current: _Open,
        app_id: str,
        i: int,
        spec: MetricSpec,
        start: datetime,
        end: datetime,
        states: dict[KeyId, KeyState],
        measured: dict[KeyId, list[tuple[MetricWindow, QuantileSketch | None]]],
    ) -> list[DetectionEvent]:
        """Follow an open detection: worse, sharper, still on, clean (three in a row close it), or silent."""
        options = self.options.detector
        current.age += 1
        refining = current.age <= self.options.refine_windows
        if refining:
            self._gather(current, i, measured)
        watch_z = options.watch_z
        report_row = measured.get(current.report)
        report = report_row[i][0] if report_row is not None else None
        app_key: KeyId = (app_id, None, None)
        app_row = measured.get(app_key)
        # Pooled over a few windows: rare events (join failures) are not "clean" in every window without one.
        app_bad = app_row is not None and app_row[i][0].volume and still_bad(states[app_key], i, 6, watch_z)
        if report is None or not report.volume:
            # The slice has gone quiet (an outage empties it): neither clean nor bad, unless the app still is.
            current.silent += 1
            if app_bad:
                current.clean, current.clean_since = 0, None
            if current.silent >= self.options.silence_windows:
                return [self._close(app_id, i, spec, current.clean_since or start)]
            return []
        current.silent = 0
        if not (app_bad or still_bad(states[current.report], i, 6, watch_z)):
            if current.clean == 0:
                current.clean_since = start
            current.clean += 1
            if current.clean >= self.options.clear_windows:
                return [self._close(app_id, i, spec, current.clean_since or start)]
            return []
        current.clean, current.clean_since = 0, None
        detection = current.detection
        refined = refining and self._refine(current, app_id, i, spec, end, states)
        shown = current.shown or current.report
        state = states.get(shown) or self.keys.get(shown) or states[current.report]
        shown_row = measured.get(shown)
        now = shown_row[i][0] if shown_row is not None else None
        if now is not None and now.den > 0 and not refined:  # (refined: its counts already hold this window)
            current.num += now.num
            current.den += now.den
            if spec.kind == "quantile" and len(current.values) < 2000:
                current.values.append(now.value)
        if spec.kind == "quantile":
            observed = statistics.median(current.values) if current.values else state.baseline_value(i)
        else:
            observed = current.num / current.den if current.den > 0 else 0.0
        baseline = state.baseline_value(i)
        detection.observed = metric_value(spec, observed)
        if refined:
            detection.baseline = metric_value(spec, baseline)
        sessions_now = int(state.recent[i, state.recent_at % RECENT, 4]) if now is not None else 0
        sessions = max(detection.sessions, sessions_now)
        detection.sessions = sessions
        severity = worse(detection.severity, severity_for(spec, sessions, baseline, observed))
        if severity != detection.severity or refined:
            detection.severity = severity
            return [DetectionEvent("updated", detection)]
        return []

    def _gather(
        self, current: _Open, i: int, measured: dict[KeyId, list[tuple[MetricWindow, QuantileSketch | None]]]
    ) -> None:
        """Add this window's counts of every slice key to the detection's evidence."""
        for key, row in measured.items():
            mw = row[i][0]
            if key[1] is None or mw.den <= 0:
                continue
            cell = current.evidence.setdefault(key, [0.0, 0.0])
            cell[0] += mw.num_app
            cell[1] += mw.den

    def _refine(
        self, current: _Open, app_id: str, i: int, spec: MetricSpec, at: datetime, states: dict[KeyId, KeyState]
    ) -> bool:
        """Sharpen the slice from the evidence gathered since the detection opened. Only a slice that contains
        the current one is taken (evidence that grows narrows the cause, it does not move it), and only once
        the same slice is found on two windows in a row (the evidence is looked at every window)."""
        detection = current.detection
        found, candidates = self._localize(app_id, spec.name, RECENT, states, current)
        if not found or not set(detection.slice.items()) < set(found.items()):
            current.pending = None
            return False
        if found != current.pending:
            current.pending = found
            return False
        shown = self._report_key(app_id, found, states, i)
        if shown is None:
            return False
        state = states[shown]
        current.pending = None
        current.shown = shown
        if shown not in current.watch:
            current.watch.append(shown)
        state.frozen[i] = True  # the slice's departure must not become its baseline
        current.num, current.den = current.evidence.get(shown, [0.0, 0.0])
        if spec.kind == "quantile":
            current.values = state.last_values(i, min(current.age + 1, RECENT))
        detection.slice = found
        detection.candidates = candidates
        detection.refined_at = at
        detection.sessions = int(max(state.recent[i, :, 4].max(), 0))
        return True

    def _close(self, app_id: str, i: int, spec: MetricSpec, at: datetime) -> DetectionEvent:
        current = self.open.pop((app_id, spec.name))
        current.detection.closed_at = at
        for key in current.watch:
            state = self.keys.get(key)
            if state is not None:
                state.frozen[i] = False
        # Evidence gathered during the departure belongs to it: no key of the app may re-open it on its own.
        for key, state in self.keys.items():
            if key[0] == app_id:
                state.restart_evidence(i)
        return DetectionEvent("closed", current.detection)

    # -- localization ------------------------------------------------------------------------------------
    def _localize(
        self, app_id: str, metric: str, windows: int, states: dict[KeyId, KeyState], opened: _Open | None = None
    ) -> tuple[dict[str, str], list[dict[str, object]]]:
        """The slice that explains the departure of `metric` over the last `windows` windows; for an open
        detection, over the evidence it gathered, against the slices' baselines as they were at opening.
        A failure finds nothing (counted): the detection still opens, on the key that alarmed."""
        try:
            return self._localize_unsafe(app_id, metric, windows, states, opened)
        except Exception as exc:
            self._failed("localize", exc)
            return {}, []

    def _localize_unsafe(
        self, app_id: str, metric: str, windows: int, states: dict[KeyId, KeyState], opened: _Open | None = None
    ) -> tuple[dict[str, str], list[dict[str, object]]]:
        i = next(n for n, s in enumerate(CONTRACT_METRICS) if s.name == metric)
        spec = CONTRACT_METRICS[i]
        app_state = states.get((app_id, None, None))
        if app_state is None:
            return {}, []
        stats: list[SliceStats] = []
        if opened is None:
            threshold = app_state.p95_threshold(i) if spec.kind == "quantile" else 0
            for key, state in states.items():
                if key[1] is None or key[2] is None:
                    continue
                pooled = state.pooled(i, windows)
                base_num, base_den = _baseline(state, i, threshold)
                stats.append(SliceStats(key[1], key[2], base_num, base_den, float(pooled[3]), float(pooled[1])))
        else:
            for key, (obs_num, obs_den) in opened.evidence.items():
                if key[1] is None or key[2] is None:
                    continue
                # A slice first seen since the opening has no baseline: it borrows its dimension's rate.
                base_num, base_den = opened.baselines.get(key, (0.0, 0.0))
                stats.append(SliceStats(key[1], key[2], base_num, base_den, obs_num, obs_den))
        if not stats:
            return {}, []
        found = localize(stats, "up", kind="ratio", event_size=spec.event_size)
        candidates: list[dict[str, object]] = [
            {"dimension": c.dimension, "values": list(c.values), "explanatory_power": round(c.explanatory_power, 3)}
            for c in found.candidates[:5]
        ]
        return dict(found.slice), candidates

    def _report_key(self, app_id: str, slice_: dict[str, str], states: dict[KeyId, KeyState], i: int) -> KeyId | None:
        """The most specific key of the slice that has a window now (an edge rather than its region)."""
        keys = [(app_id, d, v) for d, v in slice_.items() if (app_id, d, v) in states]
        if not keys:
            return None
        return min(keys, key=lambda k: (float(states[k].base_den[i] + states[k].hist.sum()), _label(k)))
