"""Telemetry pages: the apps a viewer may see, an app's quality dashboard, the session inspector, ticket diagnostics.

The charts draw from the JSON query API (telemetry/query_api.py), whose router is included here because
features.py mounts only `api` and `views` routers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.telemetry import query_api
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import TicketId
from zhiban.web.scopes import needs
from zhiban.web.templating import render

router = APIRouter(dependencies=[needs("telemetry:read")])
pages = APIRouter(include_in_schema=False)

# The dashboard's charts, in order: (metric, unit kind the chart formats by).
CHARTS = (
    ("sessions", "count"),
    ("join_success_rate", "ratio"),
    ("video_freeze_rate", "ratio"),
    ("audio_freeze_rate", "ratio"),
    ("e2e_delay_p95_ms", "ms"),
    ("mos", "mos"),
)
BREAKDOWN_METRICS = (
    "video_freeze_rate",
    "audio_freeze_rate",
    "join_success_rate",
    "e2e_delay_p95_ms",
    "loss_p95_pct",
    "rtt_p95_ms",
    "mos",
    "sessions",
)
UNITS = {
    "sessions": "count",
    "reports": "count",
    "join_success_rate": "ratio",
    "video_freeze_rate": "ratio",
    "audio_freeze_rate": "ratio",
    "join_latency_p95_ms": "ms",
    "e2e_delay_p95_ms": "ms",
    "loss_p95_pct": "pct",
    "rtt_p95_ms": "ms",
    "jitter_p95_ms": "ms",
    "mos": "mos",
    "av_sync_p95_ms": "ms",
}
RANGES = (("1h", 3600), ("24h", 86_400), ("7d", 604_800))


@pages.get("/telemetry", response_class=HTMLResponse)
def app_list(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    from zhiban.apps import service as apps
    from zhiban.identity import service as identity

    rows = apps.list_apps(session, principal)
    orgs = {o.id: o.name for o in identity.list_organizations(session, principal)}
    return render(request, "telemetry/apps.html", apps=rows, orgs=orgs)


def _strings(request: Request) -> dict[str, str]:
    """The UI strings the dashboard's script needs, in the viewer's language."""
    from zhiban.core.i18n import translate
    from zhiban.web.deps import viewer_language

    lang = viewer_language(request)
    keys = [f"telemetry.metric.{m}" for m in UNITS] + [f"telemetry.dimension.{d}" for d in _dimensions()]
    keys += [
        "telemetry.no_data",
        "telemetry.loading",
        "telemetry.load_failed",
        "telemetry.zoomed",
        "telemetry.baseline",
        "telemetry.sessions",
    ]
    return {key: translate(lang, key) for key in keys}


def _dimensions() -> tuple[str, ...]:
    from zhiban.telemetry.service import DIMENSION_NAMES

    return tuple(DIMENSION_NAMES)


@pages.get("/telemetry/apps/{app_id}", response_class=HTMLResponse)
def dashboard(request: Request, session: DB, principal: CurrentPrincipal, app_id: query_api.AppIdPath) -> Response:
    from zhiban.apps import service as apps

    app = apps.get_app(session, principal, app_id)  # NotFound for another tenant's app
    config = {
        "app_id": app.app_id,
        "tz": principal.timezone,
        "charts": [{"metric": m, "unit": u} for m, u in CHARTS],
        "units": UNITS,
        "ranges": [{"key": k, "seconds": s} for k, s in RANGES],
        "breakdown_metrics": list(BREAKDOWN_METRICS),
        "dimensions": list(_dimensions()),
        "strings": _strings(request),
    }
    return render(
        request,
        "telemetry/dashboard.html",
        app=app,
        config=config,
        dimensions=_dimensions(),
        breakdown_metrics=BREAKDOWN_METRICS,
        ranges=RANGES,
    )


def format_metric(metric: str, value: float | None) -> str:
    """A metric for people: rates in %, latencies in ms, MOS with two decimals; – when not measured."""
    if value is None:
        return "–"
    unit = UNITS.get(metric, "")
    if unit == "ratio":
        return f"{100 * value:.2f}%" if value < 0.1 else f"{100 * value:.1f}%"
    if unit == "pct":
        return f"{value:.2f}%"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "mos":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def _report_ms(report: dict[str, Any]) -> int | None:
    from zhiban.core.errors import InvalidInput
    from zhiban.telemetry.validate import parse_ts

    try:
        return parse_ts(report.get("ts"))
    except InvalidInput:
        return None


def _block(report: dict[str, Any], name: str) -> dict[str, Any]:
    block = report.get(name)
    return block if isinstance(block, dict) else {}


def timeline_rows(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per report for the inspector: its time, events and the interval's freeze/loss figures."""
    rows = []
    for report in reports:
        ms = _report_ms(report)
        video, audio, net = (_block(report, k) for k in ("video", "audio", "net"))
        events = [e for e in report.get("events") or [] if isinstance(e, dict)]
        rows.append(
            {
                "at": None if ms is None else datetime.fromtimestamp(ms / 1000, UTC),
                "ms": ms,
                "events": events,
                "video": video,
                "audio": audio,
                "net": net,
                "trouble": bool(
                    (video.get("freeze_ms") or 0) > 0
                    or (audio.get("freeze_ms") or 0) > 0
                    or any(e.get("type") in ("error", "reconnect") or e.get("ok") is False for e in events)
                ),
            }
        )
    return rows


@pages.get("/telemetry/apps/{app_id}/sessions/{session_id}", response_class=HTMLResponse)
def inspector(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    app_id: query_api.AppIdPath,
    session_id: query_api.SessionIdPath,
) -> Response:
    from zhiban.apps import service as apps
    from zhiban.telemetry import service

    app = apps.get_app(session, principal, app_id)
    now = clock.now()
    start = now - timedelta(days=1)
    reports = service.session_timeline(session, app.app_id, session_id, start, now + timedelta(minutes=5))
    rows = timeline_rows(reports)
    first = reports[0] if reports else {}
    labels = {
        k: first.get(k)
        for k in ("channel", "user_id", "role", "region", "isp", "network", "platform", "sdk_version", "edge")
        if first.get(k)
    }
    chart = {
        "tz": principal.timezone,
        "t": [r["ms"] / 1000 for r in rows if r["ms"] is not None],
        "video_freeze": [_ratio(r["video"], "freeze_ms", "active_ms") for r in rows if r["ms"] is not None],
        "audio_freeze": [_ratio(r["audio"], "freeze_ms", "active_ms") for r in rows if r["ms"] is not None],
        "loss": [_loss(r) for r in rows if r["ms"] is not None],
    }
    return render(
        request,
        "telemetry/session.html",
        app=app,
        session_id=session_id,
        rows=rows,
        labels=labels,
        chart=chart,
        start=start,
    )


def _ratio(block: dict[str, Any], part: str, whole: str) -> float | None:
    numerator, denominator = block.get(part), block.get(whole)
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float) or denominator <= 0:
        return None
    return 100.0 * numerator / denominator


def _loss(row: dict[str, Any]) -> float | None:
    for block in (row["video"], row["audio"]):
        value = block.get("loss_pct")
        if isinstance(value, int | float):
            return float(value)
    value = row["net"].get("downlink_loss_pct")
    return float(value) if isinstance(value, int | float) else None


@pages.get("/agent/telemetry/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_diagnostics(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> Response:
    from zhiban.telemetry.diagnostics import ticket_diagnostics as diagnose

    principal.require_staff()
    found = diagnose(session, ticket_id, now=clock.now())
    window = (datetime.fromisoformat(found["from"]), datetime.fromisoformat(found["to"]))
    for app in found["apps"]:  # the page shows session times in the viewer's zone
        for s in app["sessions"]:
            s["first"], s["last"] = datetime.fromisoformat(s["first"]), datetime.fromisoformat(s["last"])
    return render(
        request,
        "telemetry/ticket_diagnostics.html",
        diag=found,
        window=window,
        created=datetime.fromisoformat(found["created_at"]),
        occurred=datetime.fromisoformat(found["occurred_at"]) if found["occurred_at"] else None,
        fmt=format_metric,
    )


@pages.get("/telemetry/apps/{app_id}/session")
def open_session(app_id: query_api.AppIdPath, id: query_api.SessionIdQuery) -> RedirectResponse:
    """The dashboard's "inspect a session" form (works without script)."""
    return RedirectResponse(f"/telemetry/apps/{app_id}/sessions/{quote(id.strip(), safe='')}", status_code=303)


router.include_router(query_api.router)
router.include_router(pages)
