"""`zhiban drill --plan PLAN --at "Sunday 03:00"`: schedule a drill; `zhiban drills list|show`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from zhiban.core.console import console as cli_console
from zhiban.core.errors import ZhibanError

app = typer.Typer(
    help=(
        "Drills: a drill customer's real ticket through the API (or e-mail) at a chosen local time, measured ticket -> "
        'page -> acknowledgement -> first reply, e.g. zhiban drill --plan enterprise --at "Sunday 03:00".'
    ),
    invoke_without_command=True,
)
console = cli_console()
err = cli_console(stderr=True)

Plan = Annotated[str | None, typer.Option(help="plan key, e.g. enterprise")]
At = Annotated[str | None, typer.Option(help='when, local: "Sunday 03:00", "03:00" or "2026-11-22 03:00"')]
Zone = Annotated[str, typer.Option("--tz", help="IANA zone of --at")]
Window = Annotated[int, typer.Option(help="minutes the drill runs before it is judged")]
Team = Annotated[str | None, typer.Option(help="team the ticket should reach (else any team passes)")]
Door = Annotated[
    str, typer.Option("--channel", help="the customer's door: api (the ticket API) or email (the inbound listener)")
]


def _fail(exc: ZhibanError) -> typer.Exit:
    err.print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(2)


def _schedule(plan: str, at: str, tz: str, window: int, team: str | None, channel: str) -> None:
    from zhiban.core.settings import get_settings
    from zhiban.desk import Desk
    from zhiban.drills import service as drills
    from zhiban.identity.model import Principal, Role

    desk = Desk(settings=get_settings())
    operator = Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")
    try:
        with desk.transaction() as session:
            row = drills.schedule_drill(
                session, desk.clock, operator, plan=plan, at=at, tz=tz, window_minutes=window,
                expected_team=team, channel=channel,
            )  # fmt: skip
            when = row.scheduled_at
    except ZhibanError as exc:
        raise _fail(exc) from None
    from zoneinfo import ZoneInfo

    local = when.astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M")
    console.print(
        f"drill {row.id} scheduled for {local} {tz} ({when.isoformat()}) by {row.channel}, judged {window} min later"
    )


@app.callback()
def drill(
    ctx: typer.Context,
    plan: Plan = None,
    at: At = None,
    tz: Zone = "Asia/Shanghai",
    window: Window = 60,
    expected_team: Team = None,
    channel: Door = "api",
) -> None:
    """Schedule a drill of a dedicated or standby plan (with --plan and --at), or list and show drills."""
    if ctx.invoked_subcommand is not None:
        return
    if not (plan and at):
        console.print(ctx.get_help())
        raise typer.Exit(0 if not (plan or at) else 2)
    _schedule(plan, at, tz, window, expected_team, channel)


@app.command("list")
def list_() -> None:
    """The latest drills and their results."""
    from zhiban.core.settings import get_settings
    from zhiban.desk import Desk
    from zhiban.drills import service as drills
    from zhiban.identity.model import Principal, Role

    desk = Desk(settings=get_settings())
    operator = Principal(person_id="cli", role=Role.ADMIN, organization_id=None)
    with desk.transaction() as session:
        rows = drills.list_drills(session, operator, limit=50)
    table = Table()
    for col in ("id", "plan", "by", "pages through", "when", "state", "result"):
        table.add_column(col)
    for r in rows:
        verdict = "" if r.result is None else ("pass" if r.result.get("passed") else f"fail ({r.result.get('broke')})")
        when = r.scheduled_at.isoformat(timespec="minutes")
        table.add_row(r.id, r.plan, r.channel, r.service_name, when, r.state, verdict)
    console.print(table)


@app.command()
def show(drill_id: Annotated[str, typer.Argument(help="drill id")]) -> None:
    """One drill's result as JSON."""
    from zhiban.core.settings import get_settings
    from zhiban.desk import Desk
    from zhiban.drills import service as drills
    from zhiban.identity.model import Principal, Role

    desk = Desk(settings=get_settings())
    operator = Principal(person_id="cli", role=Role.ADMIN, organization_id=None)
    try:
        with desk.transaction() as session:
            r = drills.get_drill(session, operator, drill_id)
            doc = {"id": r.id, "plan": r.plan, "channel": r.channel, "pages_through": r.service_name,
                   "at": r.at_label, "tz": r.tz, "scheduled_at": r.scheduled_at.isoformat(), "state": r.state,
                   "ticket_id": r.ticket_id, "incident_id": r.incident_id, "result": r.result}  # fmt: skip
    except ZhibanError as exc:
        raise _fail(exc) from None
    console.print_json(json.dumps(doc, ensure_ascii=False))


# Mounted at the top level by zhiban.cli: `zhiban drill …` (singular, as people say it) next to `zhiban drills …`.
root_groups = {"drill": app}
