"""`zhiban calendars …`: business hours, holidays, make-up days, iCal import."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from zhiban.calendars import service
from zhiban.core.console import console as cli_console
from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.core.settings import get_settings
from zhiban.desk import Desk

if TYPE_CHECKING:
    from zhiban.calendars.store import CalendarRow

app = typer.Typer(help="Business-hour calendars: hours, holidays, make-up working days.", no_args_is_help=True)
console = cli_console()
err = cli_console(stderr=True)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _fail(exc: ZhibanError) -> typer.Exit:
    err.print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(2)


def _show(row: CalendarRow) -> None:
    hours = "  ".join(f"{DAYS[int(d)]} {h or '-'}" for d, h in sorted(row.weekly.items()))
    console.print(f"{row.name} ({row.id}) v{row.version} {row.tz} country={row.country or '-'}", highlight=False)
    console.print(f"  hours: {hours}", highlight=False)
    console.print(f"  closed: {', '.join(row.holidays_added) or '-'}", highlight=False)
    console.print(f"  worked: {', '.join(sorted(set(row.holidays_removed) | set(row.workdays_added))) or '-'}")


@app.command("list")
def list_() -> None:
    """List calendars."""
    desk = Desk(settings=get_settings())
    with desk.transaction() as session:
        table = Table()
        for col in ("id", "name", "zone", "country", "version", "own holidays"):
            table.add_column(col)
        for r in service.list_calendars(session):
            table.add_row(r.id, r.name, r.tz, r.country or "-", str(r.version), str(len(r.holidays_added)))
    console.print(table)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="calendar name")],
    tz: Annotated[str, typer.Option(help="IANA time zone")],
    country: Annotated[str | None, typer.Option(help="country whose official holidays apply, e.g. CN")] = None,
    hours: Annotated[
        list[str] | None, typer.Option(help='day=hours, e.g. "mon=09:00-12:00,13:00-18:00"; repeat per day')
    ] = None,
) -> None:
    """Add a calendar (default hours Mon-Fri 09:00-18:00)."""
    try:
        desk = Desk(settings=get_settings())
        with desk.transaction() as session:
            row = service.create_calendar(session, desk.clock, name=name, tz=tz, country=country, weekly=_hours(hours))
            _show(row)
    except ZhibanError as exc:
        raise _fail(exc) from None


def _hours(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    out = {}
    for item in items:
        day, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"bad --hours {item!r}: use day=HH:MM-HH:MM")
        out[day.strip()] = value.strip()
    return out


@app.command("set-hours")
def set_hours(
    calendar: Annotated[str, typer.Argument(help="calendar id or name")],
    hours: Annotated[list[str], typer.Option(help='day=hours, e.g. "sat=10:00-16:00"; days not given are closed')],
) -> None:
    """Replace the weekly hours; open tickets follow from now on."""
    try:
        desk = Desk(settings=get_settings())
        with desk.transaction() as session:
            _show(service.update_calendar(session, desk.clock, calendar, weekly=_hours(hours)))
    except ZhibanError as exc:
        raise _fail(exc) from None


def _dates_command(calendar: str, closing: list[str], opening: list[str], forget: list[str]) -> None:
    try:
        desk = Desk(settings=get_settings())
        with desk.transaction() as session:
            _show(
                service.edit_dates(session, desk.clock, calendar, add_holidays=closing, work_on=opening, forget=forget)
            )
    except ZhibanError as exc:
        raise _fail(exc) from None


CalArg = Annotated[str, typer.Argument(help="calendar id or name")]
DatesArg = Annotated[list[str], typer.Argument(help="dates, YYYY-MM-DD")]


@app.command("close")
def close(calendar: CalArg, dates: DatesArg) -> None:
    """Close dates (extra holidays)."""
    _dates_command(calendar, dates, [], [])


@app.command("work")
def work(calendar: CalArg, dates: DatesArg) -> None:
    """Work on dates: make-up working days, or official holidays worked anyway."""
    _dates_command(calendar, [], dates, [])


@app.command("forget")
def forget(calendar: CalArg, dates: DatesArg) -> None:
    """Drop this calendar's own edits of these dates (back to the weekly hours and official holidays)."""
    _dates_command(calendar, [], [], dates)


@app.command("import-ical")
def import_ical(calendar: CalArg, path: Annotated[Path, typer.Argument(help=".ics file")]) -> None:
    """Close the all-day dates of an iCalendar file."""
    try:
        data = path.read_bytes()
        desk = Desk(settings=get_settings())
        with desk.transaction() as session:
            row, count = service.import_ical(session, desk.clock, calendar, data)
            console.print(f"{count} new closed date(s)")
            _show(row)
    except OSError as exc:
        err.print(f"error: cannot read {path}: {exc.strerror}", markup=False)
        raise typer.Exit(2) from None
    except ZhibanError as exc:
        raise _fail(exc) from None
