"""Report pages: the dashboard with charts and definitions, and the customer SLA report (HTML and PDF)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from zhiban.core.errors import ZhibanError
from zhiban.core.i18n import translate
from zhiban.identity import service as identity
from zhiban.reports import service
from zhiban.reports.pdf import find_cjk_font, render_pdf
from zhiban.reports.render import render_html
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of, viewer_language
from zhiban.web.scopes import needs
from zhiban.web.templating import local_time, render

router = APIRouter(include_in_schema=False, dependencies=[needs("reports:read")])

Text = Annotated[str | None, Query(max_length=100)]
OrgRef = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Month = Annotated[str, Path(pattern=r"^\d{4}-\d{2}$")]


@router.get("/reports", response_class=HTMLResponse)
def dashboard(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    plan: Text = None,
    priority: Text = None,
    team: Text = None,
    organization_id: Text = None,
) -> Response:
    form = {"from": start or "", "to": end or "", "plan": plan or "", "priority": priority or "",
            "team": team or "", "organization_id": organization_id or ""}  # fmt: skip
    error = None
    try:
        filters = service.parse_filters(
            clock, start=start, end=end, plan=plan, priority=priority or None, team=team,
            organization_id=organization_id, tz=principal.timezone,
        )  # fmt: skip
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        error, filters = exc.detail, service.parse_filters(clock, tz=principal.timezone)
    figures = service.all_figures(session, clock, principal, filters)
    volume = service.daily_volume(session, principal, filters, principal.timezone)
    orgs = [(o.id, o.name) for o in identity.organizations(session, limit=10_000)] if principal.is_staff else []
    teams = [t.name for t in identity.teams(session, limit=10_000)]
    scope = service.scoped(session, principal, filters)
    query = request.url.query
    return render(
        request,
        "reports/dashboard.html",
        figures=figures,
        charts=_charts(figures, volume, viewer_language(request)),
        form=form,
        error=error,
        scope=scope,
        organizations=orgs if principal.is_staff else [],
        teams=teams,
        plans=("basic", "standard", "premium", "enterprise"),
        csv_query=("?" + query) if query else "",
        month=local_time(clock.now(), principal.timezone, "%Y-%m"),
    )


# Short axis labels: seven bars must fit a phone's width.
_METRIC_SHORT = {"first_response": "FR", "next_response": "NR", "periodic_update": "UPD", "resolution": "RES"}


def _charts(figures: dict[str, service.Figure], volume: dict[str, list[Any]], lang: str) -> dict[str, Any]:
    """The chart specs the page's script draws (labels already in the viewer's language)."""

    def t(key: str) -> str:
        return translate(lang, key)

    def col(rows: list[dict[str, Any]], name: str) -> list[Any]:
        return [r.get(name) for r in rows]

    buckets = ("business_hours", "out_of_hours", "holiday")
    fr = figures["first_response"].summary
    charts: dict[str, Any] = {
        "volume": {"kind": "lines", "data": [volume["t"], volume["filed"], volume["solved"]],
                   "names": [t("reports.filed"), t("reports.solved")]},
        "fr": {"labels": [t(f"reports.bucket.{b}") for b in buckets], "unit": t("reports.minutes"),
               "series": [{"label": "p90", "values": [fr[b]["p90_minutes"] for b in buckets]},
                          {"label": "p50", "values": [fr[b]["p50_minutes"] for b in buckets]}]},
    }  # fmt: skip
    sc = figures["sla_compliance"].rows[:-1]
    charts["sc"] = {
        "labels": [f"{r['plan'][:4]} {_METRIC_SHORT.get(r['metric'], r['metric'][:4])}" for r in sc],
        "unit": "%",
        "series": [{"label": t("reports.compliance"), "values": col(sc, "compliance_pct")}],
    }
    rs = figures["resolution"].rows
    charts["rs"] = {
        "labels": [t(f"reports.measure.{r['measure']}") for r in rs],
        "unit": "%",
        "series": [{"label": "%", "values": col(rs, "pct")}],
    }
    bands = [r for r in figures["backlog"].rows if r["dimension"] == "age_band"]
    charts["bl"] = {
        "labels": col(bands, "key"),
        "unit": t("reports.tickets"),
        "series": [{"label": t("reports.tickets"), "values": col(bands, "count")}],
    }
    teams = [r for r in figures["mtta_mttr"].rows if r["scope"] == "team"]
    charts["mm"] = {
        "labels": col(teams, "name"),
        "unit": t("reports.minutes"),
        "series": [{"label": "MTTR", "values": col(teams, "mttr_minutes")},
                   {"label": "MTTA", "values": col(teams, "mtta_minutes")}],
    }  # fmt: skip
    if "pages_per_person" in figures:
        pp = figures["pages_per_person"].rows
        charts["pp"] = {
            "labels": [str(r["name"])[:18] for r in pp],
            "unit": "",
            "series": [{"label": t("reports.total"), "values": col(pp, "total")},
                       {"label": t("reports.out_of_hours"), "values": col(pp, "out_of_hours")},
                       {"label": t("reports.sleep_hours"), "values": col(pp, "sleep_hours")}],
        }  # fmt: skip
    return charts


def _lang(request: Request, lang: str | None) -> str:
    return lang if lang in ("zh", "en") else viewer_language(request)


@router.get("/reports/customers/{org_ref}/{month}.pdf")
def customer_pdf(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    org_ref: OrgRef,
    month: Month,
    lang: Annotated[str | None, Query(max_length=2)] = None,
) -> Response:
    report = service.customer_report(session, clock, principal, org_ref, month)
    body = render_pdf(report, find_cjk_font(desk_of(request).settings.report_font), _lang(request, lang))
    name = f"sla-report-{org_ref}-{month}.pdf"
    return Response(body, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


@router.get("/reports/customers/{org_ref}/{month}", response_class=HTMLResponse)
def customer_html(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    org_ref: OrgRef,
    month: Month,
    lang: Annotated[str | None, Query(max_length=2)] = None,
) -> Response:
    report = service.customer_report(session, clock, principal, org_ref, month)
    return HTMLResponse(render_html(report, _lang(request, lang)))
