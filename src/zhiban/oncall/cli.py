"""`zhiban oncall …`: who is on call, the schedules, and the demo schedules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.identity.model import Principal, Role

app = typer.Typer(help="On-call schedules: who is on call now or at a time, and the schedules.", no_args_is_help=True)
console = Console()
# The command line acts as the desk's operator: it reads every schedule.
_OPERATOR = Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")
err = Console(stderr=True)


def _fail(exc: ZhibanError) -> typer.Exit:
    err.print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(2)


def _desk() -> Desk:
    return Desk(settings=get_settings())


def _moment(text: str | None, desk: Desk) -> datetime:
    if text is None:
        return desk.clock.now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"bad --at {text!r}: use ISO 8601, e.g. 2026-11-21T03:00+08:00") from exc
    # A time without an offset is read as UTC, which the output says plainly.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@app.command()
def who(
    schedule: Annotated[str | None, typer.Option(help="schedule name (default: every schedule)")] = None,
    at: Annotated[str | None, typer.Option(help="ISO time; without an offset it is UTC (default: now)")] = None,
) -> None:
    """Who is on call now (or --at a time), per schedule, and until when."""
    from zhiban.oncall import service
    from zhiban.oncall.model import zone_of

    desk = _desk()
    try:
        moment = _moment(at, desk)
        with desk.transaction() as session:
            rows = service.list_schedules(session, _OPERATOR)
            if schedule is not None:
                rows = [r for r in rows if r.name == schedule]
                if not rows:
                    raise InvalidInput(f"no schedule named {schedule!r}")
            lines = []
            for row in rows:
                current, _following = service.now_and_next(session, row.id, moment)
                names = service.names_of(session, [current.person_id] if current else [])
                zone = zone_of(row.zone)
                if current is None:
                    lines.append((row.name, "-", "nobody on call", ""))
                else:
                    until = current.end.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
                    lines.append((row.name, current.person_id, names.get(current.person_id, ""), until))
    except ZhibanError as exc:
        raise _fail(exc) from None
    table = Table(title=f"On call at {moment.astimezone(UTC).isoformat(timespec='minutes')}")
    for col in ("schedule", "person id", "name", "until"):
        table.add_column(col)
    for line in lines:
        table.add_row(*line)
    console.print(table)


@app.command()
def schedules() -> None:
    """List the schedules: zone, owner, layers, who is on call now."""
    from zhiban.oncall import service

    desk = _desk()
    try:
        with desk.transaction() as session:
            rows = []
            now = desk.clock.now()
            for row in service.list_schedules(session, _OPERATOR):
                on_call = service.on_call_now(session, row.id, now)
                names = service.names_of(session, [*on_call, *([row.owner_id] if row.owner_id else [])])
                rows.append(
                    (
                        row.id,
                        row.name,
                        row.zone,
                        names.get(row.owner_id, "") if row.owner_id else "",
                        str(len(service.layers(session, _OPERATOR, row.id))),
                        ", ".join(names.get(p, p) for p in on_call) or "nobody",
                    )
                )
    except ZhibanError as exc:
        raise _fail(exc) from None
    table = Table()
    for col in ("id", "name", "zone", "owner", "layers", "on call now"):
        table.add_column(col)
    for line in rows:
        table.add_row(*line)
    console.print(table if rows else "no on-call schedules")


@app.command("seed-demo")
def seed_demo() -> None:
    """Create the demo schedules (needs the demo people from `zhiban demo`)."""
    from zhiban.oncall.service import seed_demo_schedules

    desk = _desk()
    try:
        with desk.transaction() as session:
            made = seed_demo_schedules(session, desk.clock)
    except ZhibanError as exc:
        raise _fail(exc) from None
    console.print(f"created: {', '.join(made)}" if made else "demo schedules already present")
