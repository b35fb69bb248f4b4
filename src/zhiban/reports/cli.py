"""`zhiban reports …`: the customer SLA report as a PDF, and any figure as CSV."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

from zhiban.core.console import console as cli_console
from zhiban.core.errors import ZhibanError

app = typer.Typer(help="Reports: the customer SLA report (PDF) and support figures (CSV).", no_args_is_help=True)
console = cli_console()
err = cli_console(stderr=True)


def _operator() -> object:
    from zhiban.identity.model import Principal, Role

    # The CLI runs on the desk's own host: it reads as the vendor, like an admin.
    return Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")


def _fail(exc: ZhibanError) -> typer.Exit:
    err.print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(2)


@app.command()
def customer(
    org: Annotated[str, typer.Option(help="organization slug (or id)")],
    month: Annotated[str, typer.Option(help="YYYY-MM, in the organization's time zone")],
    out: Annotated[Path, typer.Option(help="where to write the PDF (or .html)")],
    lang: Annotated[str, typer.Option(help="zh or en (default: the organization's language)")] = "",
) -> None:
    """Write one organization's monthly SLA report as a PDF (or HTML if --out ends in .html)."""
    from zhiban.core.settings import get_settings
    from zhiban.desk import Desk
    from zhiban.identity.model import Principal
    from zhiban.reports import service
    from zhiban.reports.pdf import find_cjk_font, render_pdf
    from zhiban.reports.render import render_html

    desk = Desk(settings=get_settings())
    operator = _operator()
    assert isinstance(operator, Principal)
    try:
        with desk.transaction() as session:
            report = service.customer_report(session, desk.clock, operator, org, month)
            language = lang or service.find_organization(session, operator, org).language
        if language not in ("zh", "en"):
            raise typer.BadParameter("--lang is zh or en")
        if out.suffix.lower() == ".html":
            out.write_text(render_html(report, language), encoding="utf-8")
        else:
            out.write_bytes(render_pdf(report, find_cjk_font(desk.settings.report_font), language))
    except ZhibanError as exc:
        raise _fail(exc) from None
    console.print(f"wrote {out} ({report.organization_name}, {month})", highlight=False)


@app.command()
def figure(
    name: Annotated[str, typer.Argument(help="first_response, sla_compliance, backlog, on_duty, ...")],
    start: Annotated[str | None, typer.Option("--from", help="date or ISO time (default: 30 days ago)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="date or ISO time (default: now)")] = None,
    plan: Annotated[str | None, typer.Option(help="plan key")] = None,
    priority: Annotated[str | None, typer.Option(help="P1..P4")] = None,
    team: Annotated[str | None, typer.Option(help="team name")] = None,
    org: Annotated[str | None, typer.Option(help="organization slug or id")] = None,
    tz: Annotated[str, typer.Option(help="zone of dates given without a time")] = "UTC",
) -> None:
    """Print one figure's rows as CSV on standard output."""
    from zhiban.core.settings import get_settings
    from zhiban.desk import Desk
    from zhiban.identity.model import Principal
    from zhiban.reports import service

    desk = Desk(settings=get_settings())
    operator = _operator()
    assert isinstance(operator, Principal)
    try:
        with desk.transaction() as session:
            org_id = service.find_organization(session, operator, org).id if org else None
            filters = service.parse_filters(
                desk.clock, start=start, end=end, plan=plan, priority=priority, team=team, organization_id=org_id, tz=tz
            )
            result = service.figure(session, desk.clock, operator, name, filters)
    except ZhibanError as exc:
        raise _fail(exc) from None
    writer = csv.DictWriter(sys.stdout, fieldnames=list(result.columns), extrasaction="ignore")
    writer.writeheader()
    for row in result.rows:
        writer.writerow(row)
