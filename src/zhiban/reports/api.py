"""Report API: every figure as JSON or CSV, filtered by period, plan, priority, team and organization."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel

from zhiban.reports import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.scopes import needs

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], dependencies=[needs("reports:read")])

FigureName = Annotated[str, Path(pattern=r"^[a-z_]{1,40}$", description=f"one of {', '.join(service.FIGURES)}")]
Text = Annotated[str | None, Query(max_length=100)]


class DefinitionOut(BaseModel):
    key: str
    en: str
    zh: str


class FigureOut(BaseModel):
    figure: str
    filters: dict[str, Any]
    definitions: list[DefinitionOut]
    summary: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, Any]]


def report_filters(
    clock: ClockDep,
    principal: CurrentPrincipal,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    plan: Text = None,
    priority: Text = None,
    team: Text = None,
    organization_id: Text = None,
    tz: Text = None,
) -> service.Filters:
    """The filters every figure takes (period, plan, priority, team, organization, zone), parsed once."""
    principal.require_scope("reports:read")
    return service.parse_filters(
        clock,
        start=start,
        end=end,
        plan=plan,
        priority=priority,
        team=team,
        organization_id=organization_id,
        tz=tz or principal.timezone,
    )


Filters = Annotated[service.Filters, Depends(report_filters)]


@router.get("/{figure}.csv", summary="A figure's rows as CSV (UTF-8 with BOM, for spreadsheets)")
def figure_csv(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    figure: FigureName,
    filters: Filters,
) -> Response:
    result = service.figure(session, clock, principal, figure, filters)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(result.columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in result.rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    headers = {"Content-Disposition": f'attachment; filename="{figure}.csv"'}
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/{figure}", response_model=FigureOut, summary="One figure with its definition (en/zh)")
def figure_json(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    figure: FigureName,
    filters: Filters,
) -> FigureOut:
    result = service.figure(session, clock, principal, figure, filters)
    return FigureOut(
        figure=result.name,
        filters=service.scoped(session, principal, filters).to_json(),
        definitions=[DefinitionOut(key=d.key, en=d.en, zh=d.zh) for d in result.definitions],
        summary=result.summary,
        columns=list(result.columns),
        rows=result.rows,
    )
