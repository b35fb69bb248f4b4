"""`zhiban oncall …`: who is on call, the schedules, and the demo schedules."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from zhiban.core.console import console as cli_console
from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.identity.model import Principal, Role

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="On-call schedules: who is on call now or at a time, and the schedules.", no_args_is_help=True)
console = cli_console()
# The command line acts as the desk's operator: it reads every schedule.
_OPERATOR = Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")
err = cli_console(stderr=True)


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


# `--plan`: the composition root (zhiban.cli) names who answers for a plan (the duty feature, which oncall must
# not import: duty depends on incidents, which depends on oncall). Called as lookup(session, plan, at).
_plan_lookups: list[Callable[[Session, str, datetime], Any]] = []


def plans_with(lookup: Callable[[Session, str, datetime], Any]) -> None:
    """Answer `zhiban oncall who --plan` with this lookup (a dataclass value, printed as JSON or a table)."""
    _plan_lookups[:] = [lookup]


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


@app.command()
def who(
    schedule: Annotated[str | None, typer.Option(help="schedule name (default: every schedule)")] = None,
    at: Annotated[str | None, typer.Option(help="ISO time; without an offset it is UTC (default: now)")] = None,
    plan: Annotated[
        str | None, typer.Option(help="also whom a ticket of this plan that pages would wake first, e.g. enterprise")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print JSON: schedules, people (id, name, e-mail), until")
    ] = False,
) -> None:
    """Who is on call now (or --at a time), per schedule, and until when; --plan: whom that plan's pages wake."""
    from zhiban.identity import service as identity
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
            found = []
            for row in rows:
                current, _following = service.now_and_next(session, row.id, moment)
                person = identity.person(session, current.person_id) if current else None
                found.append((row, current, person))
            paging = None
            if plan is not None:
                if not _plan_lookups:
                    raise InvalidInput("--plan needs the duty feature (run the zhiban command)")
                paging = _plan_lookups[0](session, plan, moment)
    except ZhibanError as exc:
        raise _fail(exc) from None
    if as_json:
        document: dict[str, Any] = {
            "at": moment.astimezone(UTC).isoformat(),
            "schedules": [
                {
                    "id": row.id,
                    "name": row.name,
                    "zone": row.zone,
                    "on_call": [
                        {
                            "id": current.person_id,
                            "name": person.name if person else "",
                            "email": person.email if person else "",
                            "until": current.end.astimezone(UTC).isoformat(),
                        }
                    ]
                    if current
                    else [],
                }
                for row, current, person in found
            ],
        }
        if paging is not None:
            document["plan"] = _jsonable(paging)
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=f"On call at {moment.astimezone(UTC).isoformat(timespec='minutes')}")
    for col in ("schedule", "person id", "name", "until"):
        table.add_column(col)
    for row, current, person in found:
        if current is None:
            table.add_row(row.name, "-", "nobody on call", "")
        else:
            until = current.end.astimezone(zone_of(row.zone)).strftime("%Y-%m-%d %H:%M %Z")
            table.add_row(row.name, current.person_id, person.name if person else "", until)
    console.print(table)
    if paging is not None:
        woken = ", ".join(f"{p.name} <{p.email}>" for p in paging.people) or "nobody"
        via = f"{paging.service_name} → {paging.policy_name}, level {paging.level}" if paging.level else "no page"
        console.print(f"plan {paging.plan} ({paging.mode}): {via}: {woken}", highlight=False)


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
