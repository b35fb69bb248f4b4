"""Use cases of telemetry: persist closed windows, roll them up, prune, and answer dashboards and diagnostics.

Resolutions: 10 s windows (from the pipeline), rolled up to 1 min and then 1 h once a bucket is complete.
Queries read the coarsest rows that cover a span and fill the rest (the newest, not rolled up yet) from
finer rows, so a chart of the last hour is complete up to the last closed 10 s window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

from zhiban.core.errors import InvalidInput
from zhiban.identity.model import Principal
from zhiban.telemetry import store
from zhiban.telemetry.qoe import METRIC_BY_NAME

RESOLUTIONS: Final = (3600, 60, 10)  # coarsest first
MAX_POINTS: Final = 2_000
_LONG_AGO: Final = datetime(2000, 1, 1, tzinfo=UTC)
MAX_SPAN: Final = timedelta(days=400)
MAX_ROLLUP_BUCKETS_PER_CALL: Final = 240
QUERY_METRICS: Final = ("reports", *METRIC_BY_NAME)
DIMENSION_NAMES: Final = ("region", "country", "isp", "network", "platform", "sdk_version", "edge", "role", "channel")


@dataclass(frozen=True)
class Retention:
    """How long each resolution is kept."""

    ten_seconds: timedelta = timedelta(days=2)
    one_minute: timedelta = timedelta(days=14)
    one_hour: timedelta = timedelta(days=400)
    raw_reports: timedelta = timedelta(hours=24)

    def of(self, seconds: int) -> timedelta:
        return {10: self.ten_seconds, 60: self.one_minute, 3600: self.one_hour}[seconds]


# -- tenancy ----------------------------------------------------------------------------------------------


def visible_app(session: Session, principal: Principal, app_id: str) -> str:
    """The app id if the caller may see the app's telemetry (NotFound otherwise): call before any query."""
    from zhiban.apps import service as apps

    return apps.get_app(session, principal, app_id).app_id


# -- writing ----------------------------------------------------------------------------------------------


def persist_windows(session: Session, windows: Sequence[Any]) -> int:
    """Store closed 10 s windows (idempotent for a window stored already: merged, not doubled)."""
    return store.save_windows(session, windows)


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def roll_up(session: Session, app_id: str, closed_until: datetime) -> int:
    """Roll complete buckets up (10 s → 1 min → 1 h) for windows closed before `closed_until`; returns buckets made."""
    from zhiban.telemetry.window import rollup

    made = 0
    ready = closed_until  # the finer resolution is complete up to here
    for finer, coarser in ((10, 60), (60, 3600)):
        complete_until = _floor(ready, coarser)
        ready = _floor(ready, finer)
        done = store.latest_window_end(session, app_id, coarser)
        begin = done if done is not None else store.earliest_window_start(session, app_id, finer, _LONG_AGO)
        if begin is not None:
            bucket = _floor(begin, coarser)
            for _ in range(MAX_ROLLUP_BUCKETS_PER_CALL):
                end = bucket + timedelta(seconds=coarser)
                if end > complete_until:
                    break
                rows = store.window_rows(session, app_id, finer, bucket, end, any_slice=True)
                if rows:
                    windows = rollup(map(store.window_of, rows), coarser)
                    store.replace_windows(session, app_id, coarser, bucket, end, windows)
                    made += 1
                bucket = end
        ready = complete_until
    return made


def prune(session: Session, now: datetime, retention: Retention = Retention()) -> dict[str, int]:
    """Delete what is past its retention; returns rows deleted per kind."""
    from zhiban.telemetry.model import datetime_to_ms

    deleted = {f"windows_{s}s": store.prune_windows(session, s, now - retention.of(s)) for s in RESOLUTIONS}
    deleted["raw_reports"] = store.prune_raw(session, datetime_to_ms(now - retention.raw_reports))
    return deleted


# -- reading ----------------------------------------------------------------------------------------------


def _check_span(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end must be timezone-aware")
    if not start < end:
        raise InvalidInput("start must be before end")
    if end - start > MAX_SPAN:
        raise InvalidInput(f"a span is at most {MAX_SPAN.days} days")


def _check_metric(metric: str) -> None:
    if metric not in QUERY_METRICS:
        raise InvalidInput(f"unknown metric {metric!r}; known: {', '.join(QUERY_METRICS)}")


def _check_dimension(dimension: str) -> None:
    if dimension not in DIMENSION_NAMES:
        raise InvalidInput(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSION_NAMES)}")


def _covering_rows(
    session: Session,
    app_id: str,
    start: datetime,
    end: datetime,
    *,
    dimension: str | None = None,
    value: str | None = None,
    any_slice: bool = False,
    coarsest: int = 3600,
) -> list[store.WindowRow]:
    """Rows that tile [start, end) without overlap, coarsest available resolution first."""
    out: list[store.WindowRow] = []
    covered: dict[int, set[datetime]] = {}
    for seconds in RESOLUTIONS:
        if seconds > coarsest:
            continue
        # A bucket is covered when its app-wide row exists: a rollup makes every slice of a bucket at once.
        app_rows = store.window_rows(session, app_id, seconds, start, end)
        complete = {
            r.window_start
            for r in app_rows
            if r.window_start + timedelta(seconds=seconds) <= end
            and not any(_floor(r.window_start, c) in bucket_starts for c, bucket_starts in covered.items())
        }
        if dimension is None and value is None and not any_slice:
            rows = app_rows
        else:
            rows = store.window_rows(
                session, app_id, seconds, start, end, dimension=dimension, value=value, any_slice=any_slice
            )
        out.extend(r for r in rows if r.window_start in complete)
        covered[seconds] = complete
    return out


@dataclass(frozen=True)
class SeriesPoint:
    """One step of a series: its start, the metric (None: nothing measured) and the sessions behind it."""

    start: datetime
    value: float | None
    sessions: int
    reports: int


def _metric_of(window: Any, metric: str) -> float | None:
    if metric == "reports":
        return float(window.reports)
    value: float | None = window.metrics()[metric]
    return value


def series(
    session: Session,
    app_id: str,
    metric: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    dimension: str | None = None,
    value: str | None = None,
) -> list[SeriesPoint]:
    """A metric of an app (or of one dimension value) per `step` over [start, end); every step has a point."""
    from zhiban.telemetry.window import merge

    _check_span(start, end)
    _check_metric(metric)
    if (dimension is None) != (value is None):
        raise InvalidInput("give both dimension and value, or neither")
    if dimension is not None:
        _check_dimension(dimension)
    step_s = int(step.total_seconds())
    if step_s < 10 or step_s % 10 or step.total_seconds() != step_s:
        raise InvalidInput("step must be a whole multiple of 10 seconds")
    start = _floor(start, 10)
    points = -(-int((end - start).total_seconds()) // step_s)
    if points > MAX_POINTS:
        raise InvalidInput(f"at most {MAX_POINTS} points: use a larger step")
    # A resolution fits when its rows never straddle two steps: it divides the step and the start.
    epoch = int(start.timestamp())
    coarsest = max(r for r in RESOLUTIONS if step_s % r == 0 and epoch % r == 0)
    rows = _covering_rows(session, app_id, start, end, dimension=dimension, value=value, coarsest=coarsest)
    buckets: dict[int, list[store.WindowRow]] = {}
    for row in rows:
        index = int((row.window_start - start).total_seconds()) // step_s
        if 0 <= index < points:
            buckets.setdefault(index, []).append(row)
    out = []
    for index in range(points):
        moment = start + index * step
        members = buckets.get(index)
        if not members:
            out.append(SeriesPoint(moment, None, 0, 0))
            continue
        if len(members) == 1 and metric in (*store.METRIC_COLUMNS, "sessions", "reports"):
            row = members[0]
            raw = row.sessions if metric == "sessions" else row.reports if metric == "reports" else getattr(row, metric)
            out.append(SeriesPoint(moment, None if raw is None else float(raw), row.sessions, row.reports))
            continue
        combined = store.window_of(members[0])
        for other in members[1:]:
            combined = merge(combined, store.window_of(other))
        out.append(SeriesPoint(moment, _metric_of(combined, metric), combined.sessions, combined.reports))
    return out


@dataclass(frozen=True)
class BreakdownRow:
    """One value of a dimension over a span: its metric, the app's, and how much it hurts (impact)."""

    value: str
    metric: float | None
    baseline: float | None
    sessions: int
    reports: int
    impact: float


def _merged_by_key(rows: Sequence[store.WindowRow]) -> dict[Any, Any]:
    from zhiban.telemetry.window import merge

    merged: dict[Any, Any] = {}
    for row in rows:
        window = store.window_of(row)
        previous = merged.get(window.key)
        merged[window.key] = window if previous is None else merge(previous, window)
    return merged


def _impact(metric: str, observed: float | None, baseline: float | None, sessions: int) -> float:
    """sessions × relative excess over the app (as telemetry.summary weighs findings); 0 when not worse."""
    if observed is None or baseline is None or metric in ("sessions", "reports"):
        return 0.0
    floor = {"video_freeze_rate": 0.001, "audio_freeze_rate": 0.001, "loss_p95_pct": 0.1}.get(metric, 1e-9)
    if METRIC_BY_NAME[metric].worse == "up":
        return sessions * max(0.0, observed - baseline) / max(baseline, floor)
    return sessions * max(0.0, baseline - observed) / max(baseline, floor)


def breakdown(
    session: Session, app_id: str, metric: str, start: datetime, end: datetime, dimension: str
) -> list[BreakdownRow]:
    """Each value of a dimension over [start, end), the slices that hurt most first (then by sessions)."""
    _check_span(start, end)
    _check_metric(metric)
    _check_dimension(dimension)
    rows = _covering_rows(session, app_id, _floor(start, 10), end, dimension=dimension)
    app_rows = _covering_rows(session, app_id, _floor(start, 10), end)
    overall = _merged_by_key(app_rows)
    baseline = next((_metric_of(w, metric) for w in overall.values()), None)
    out = []
    for key, window in _merged_by_key(rows).items():
        observed = _metric_of(window, metric)
        out.append(
            BreakdownRow(
                value=str(key.value),
                metric=observed,
                baseline=baseline,
                sessions=window.sessions,
                reports=window.reports,
                impact=_impact(metric, observed, baseline, window.sessions),
            )
        )
    out.sort(key=lambda r: (-r.impact, -r.sessions, r.value))
    return out


def _ms(moment: datetime) -> int:
    from zhiban.telemetry.model import datetime_to_ms

    return datetime_to_ms(moment)


def session_timeline(
    session: Session, app_id: str, session_id: str, start: datetime, end: datetime, limit: int = 2_000
) -> list[dict[str, Any]]:
    """The raw reports of one session in [start, end) by event time (kept for the raw horizon, about a day)."""
    import orjson

    _check_span(start, end)
    rows = store.raw_reports(session, app_id, _ms(start), _ms(end), session_id=session_id, limit=min(limit, 10_000))
    return [orjson.loads(r.body) for r in rows]


def quality_summary(
    session: Session,
    app_id: str,
    start: datetime,
    end: datetime,
    channel: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    worst: int = 5,
) -> Any:
    """Overall metrics and the worst slices (telemetry.summary.QualitySummary) for a ticket's diagnostics.

    Filtered by channel, user or session it reads the recent raw reports; otherwise the stored windows.
    """
    from zhiban.telemetry.summary import summarize

    _check_span(start, end)
    if channel is None and user_id is None and session_id is None:
        rows = _covering_rows(session, app_id, _floor(start, 10), end, any_slice=True)
        return summarize((store.window_of(r) for r in rows), worst=worst)
    from zhiban.telemetry.aggregate import Aggregator
    from zhiban.telemetry.parse import parse_batch

    raw = store.raw_reports(
        session, app_id, _ms(start), _ms(end), session_id=session_id, user_id=user_id, channel=channel, limit=50_000
    )
    if not raw:
        return summarize([], worst=worst)
    parsed = parse_batch(b"\n".join(r.body for r in raw), max_reports=50_000, max_decompressed=512 * 1024 * 1024)
    aggregator = Aggregator(window_seconds=60, allowed_lateness_seconds=0, max_open_windows_per_app=100_000)
    # Reports come sorted by time, so nothing is late.
    aggregator.add(parsed.batch)
    return summarize(aggregator.flush(), worst=worst)


def sessions_in(
    session: Session,
    app_id: str,
    start: datetime,
    end: datetime,
    *,
    channel: str | None = None,
    user_ids: Sequence[str] = (),
    limit: int = 50,
) -> list[dict[str, Any]]:
    """An app's sessions in one channel (or of some users) over [start, end), from the recent raw reports (about
    a day), the busiest first: what a ticket's diagnostics open in the session inspector."""
    _check_span(start, end)
    rows = store.sessions_in(
        session, app_id, _ms(start), _ms(end), channel=channel, user_ids=user_ids, limit=min(limit, 200)
    )
    from zhiban.telemetry.model import ms_to_datetime

    return [
        {"session_id": s, "user_id": u, "first": ms_to_datetime(a), "last": ms_to_datetime(b), "reports": n}
        for s, u, a, b, n in rows
    ]


def summary_to_dict(summary: Any) -> dict[str, Any]:
    """A QualitySummary as plain JSON-ready data (for ticket attachments and the API)."""
    return {
        "start": summary.start.isoformat() if summary.start else None,
        "end": summary.end.isoformat() if summary.end else None,
        "overall": summary.overall,
        "worst": [
            {
                "slice": {f.key.dimension: f.key.value},
                "label": f.key.label(),
                "metric": f.metric,
                "observed": f.observed,
                "baseline": f.baseline,
                "sessions": f.sessions,
                "impact": f.impact,
            }
            for f in summary.worst
        ],
    }
