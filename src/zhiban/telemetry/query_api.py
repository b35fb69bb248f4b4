"""Telemetry query API (JSON for the dashboards' charts): series, breakdowns, one session, a quality summary.

Mounted through telemetry/views.py's router (features.py picks up only `api` and `views` modules).
Every route checks that the caller may see the app first: customers their own organization's apps, staff all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from zhiban.core.errors import InvalidInput
from zhiban.identity.model import Principal
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.scopes import needs

router = APIRouter(prefix="/api/v1/apps", tags=["telemetry"], dependencies=[needs("telemetry:read")])

AppIdPath = Annotated[str, Path(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$")]
SessionIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
SessionIdQuery = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
TimeParam = Annotated[str | None, Query(max_length=40, description="RFC 3339 with a zone, or epoch milliseconds")]
FromParam = Annotated[str | None, Query(alias="from", max_length=40, description="RFC 3339 or epoch ms")]
LabelParam = Annotated[str | None, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
NameParam = Annotated[str, Query(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]
StepParam = Annotated[int | None, Query(ge=10, le=86_400, description="seconds, a multiple of 10; auto if absent")]

# Steps the charts snap to: each divides a day, so an aligned step can read whole stored windows.
STEPS: Final = (10, 30, 60, 300, 900, 3600, 21_600, 86_400)
TARGET_POINTS: Final = 400
MAX_SERIES_SPAN: Final = timedelta(days=400)
MAX_BREAKDOWN_SPAN: Final = timedelta(days=31)
MAX_SUMMARY_SPAN: Final = timedelta(days=7)
MAX_RAW_SPAN: Final = timedelta(days=2)  # raw reports are kept about a day
DEFAULT_SPAN: Final = timedelta(hours=1)
MAX_BREAKDOWN_ROWS: Final = 200
MAX_SESSION_REPORTS: Final = 2_000


def parse_moment(raw: str | None, name: str) -> datetime | None:
    """A query-string time: RFC 3339 with a zone, or epoch milliseconds; None when absent."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    try:
        if text.lstrip("-").isdigit():
            moment = datetime.fromtimestamp(int(text) / 1000, UTC)
        else:
            moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidInput(f"{name} must be RFC 3339 (with a zone) or epoch milliseconds") from exc
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (e.g. 2026-11-21T19:00:00Z)")
    if not datetime(2000, 1, 1, tzinfo=UTC) <= moment <= datetime(2100, 1, 1, tzinfo=UTC):
        raise InvalidInput(f"{name} is out of range")
    return moment.astimezone(UTC)


def time_range(
    start_raw: str | None, end_raw: str | None, now: datetime, max_span: timedelta, default: timedelta = DEFAULT_SPAN
) -> tuple[datetime, datetime]:
    """[from, to) from the query string: `to` defaults to now, `from` to `to` − default; bounded by max_span."""
    end = parse_moment(end_raw, "to") or now
    start = parse_moment(start_raw, "from") or end - default
    if not start < end:
        raise InvalidInput("from must be before to")
    if end - start > max_span:
        raise InvalidInput(f"the range is at most {_span_text(max_span)} here")
    return start, end


def _span_text(span: timedelta) -> str:
    return f"{span.days} days" if span.days >= 1 else f"{int(span.total_seconds() // 3600)} hours"


def auto_step(span: timedelta) -> int:
    """The finest chart step that keeps a span within about TARGET_POINTS points."""
    seconds = span.total_seconds()
    return next((s for s in STEPS if seconds / s <= TARGET_POINTS), STEPS[-1])


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _visible(session: Session, principal: Principal, app_id: str) -> str:
    from zhiban.telemetry import service

    return service.visible_app(session, principal, app_id)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.get("/{app_id}/series", summary="A quality metric of an app over time (one point per step)")
def series(
    app_id: AppIdPath,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    metric: NameParam,
    from_: FromParam = None,
    to: TimeParam = None,
    step: StepParam = None,
    dimension: Annotated[str | None, Query(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")] = None,
    value: LabelParam = None,
) -> dict[str, Any]:
    from zhiban.telemetry import service

    app = _visible(session, principal, app_id)
    start, end = time_range(from_, to, clock.now(), MAX_SERIES_SPAN)
    step_s = step if step is not None else auto_step(end - start)
    if step_s % 10:
        raise InvalidInput("step must be a multiple of 10 seconds")
    if 86_400 % step_s == 0:
        start = _floor(start, step_s)  # aligned steps read whole 1 min / 1 h windows
    points = service.series(session, app, metric, start, end, timedelta(seconds=step_s), dimension, value)
    return {
        "app_id": app,
        "metric": metric,
        "from": _iso(start),
        "to": _iso(end),
        "step": step_s,
        "dimension": dimension,
        "value": value,
        "points": [
            {"start": _iso(p.start), "value": p.value, "sessions": p.sessions, "reports": p.reports} for p in points
        ],
    }


@router.get("/{app_id}/breakdown", summary="A metric per value of one dimension, the slices that hurt most first")
def breakdown(
    app_id: AppIdPath,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    metric: NameParam,
    dimension: NameParam,
    from_: FromParam = None,
    to: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BREAKDOWN_ROWS)] = 50,
) -> dict[str, Any]:
    from zhiban.telemetry import service

    app = _visible(session, principal, app_id)
    start, end = time_range(from_, to, clock.now(), MAX_BREAKDOWN_SPAN)
    rows = service.breakdown(session, app, metric, start, end, dimension)
    return {
        "app_id": app,
        "metric": metric,
        "dimension": dimension,
        "from": _iso(start),
        "to": _iso(end),
        "total": len(rows),
        "rows": [
            {
                "value": r.value,
                "metric": r.metric,
                "baseline": r.baseline,
                "sessions": r.sessions,
                "reports": r.reports,
                "impact": r.impact,
            }
            for r in rows[:limit]
        ],
    }


def session_events(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of a session's reports, each with the time of the report that carried it, in order."""
    out = []
    for report in reports:
        for event in report.get("events") or []:
            if isinstance(event, dict):
                out.append({"ts": report.get("ts"), **event})
    return out


@router.get("/{app_id}/sessions/{session_id}", summary="One session's recent reports and events (the inspector)")
def session_timeline(
    app_id: AppIdPath,
    session_id: SessionIdPath,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    from_: FromParam = None,
    to: TimeParam = None,
) -> dict[str, Any]:
    from zhiban.telemetry import service

    app = _visible(session, principal, app_id)
    start, end = time_range(from_, to, clock.now(), MAX_RAW_SPAN, default=timedelta(days=1))
    reports = service.session_timeline(session, app, session_id, start, end, limit=MAX_SESSION_REPORTS)
    return {
        "app_id": app,
        "session_id": session_id,
        "from": _iso(start),
        "to": _iso(end),
        "reports": reports,
        "events": session_events(reports),
        "truncated": len(reports) >= MAX_SESSION_REPORTS,
    }


@router.get("/{app_id}/summary", summary="Overall quality and the worst slices over a range (ticket diagnostics)")
def summary(
    app_id: AppIdPath,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    from_: FromParam = None,
    to: TimeParam = None,
    channel: LabelParam = None,
    user_id: LabelParam = None,
    session_id: LabelParam = None,
    worst: Annotated[int, Query(ge=0, le=50)] = 5,
) -> dict[str, Any]:
    from zhiban.telemetry import service

    app = _visible(session, principal, app_id)
    filtered = channel is not None or user_id is not None or session_id is not None
    start, end = time_range(from_, to, clock.now(), MAX_RAW_SPAN if filtered else MAX_SUMMARY_SPAN)
    found = service.quality_summary(session, app, start, end, channel, user_id, session_id, worst=worst)
    body = service.summary_to_dict(found)
    return {"app_id": app, "from": _iso(start), "to": _iso(end), **body, "overall": body["overall"].get(app)}
