"""`zhiban hotline …`: support lines per plan, and the phone numbers that identify callers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from zhiban.identity.model import Principal

app = typer.Typer(help="The hotline: support lines per plan and callers' phone numbers.", no_args_is_help=True)

_ADMIN_NAME = "zhiban cli"


def _fail(detail: str) -> None:
    typer.echo(f"error: {detail}", err=True)
    raise typer.Exit(2)


def _admin() -> Principal:
    from zhiban.identity.model import Principal, Role

    return Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name=_ADMIN_NAME)


@app.command("lines")
def lines() -> None:
    """List the support lines."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment
    from zhiban.hotline import service

    desk = from_environment()
    try:
        with desk.transaction() as session:
            found = service.list_lines(session, _admin())
    except ZhibanError as exc:
        _fail(exc.detail)
    if not found:
        typer.echo("no support lines: add one with `zhiban hotline set-line +15550100001 --plan enterprise`")
    for line in found:
        typer.echo(f"{line.number}\t{line.plan}\t{line.language}\t{line.label}")


@app.command("set-line")
def set_line(
    number: Annotated[str, typer.Argument(help="the number customers call, E.164 (+15550100001)")],
    plan: Annotated[str, typer.Option(help="the plan whose customers call it")],
    language: Annotated[str, typer.Option(help="zh or en: the language it answers in")] = "zh",
    label: Annotated[str, typer.Option(help="the name the greeting says (default: the plan)")] = "",
) -> None:
    """Add or change a support line."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment
    from zhiban.hotline import service

    desk = from_environment()
    try:
        with desk.transaction() as session:
            line = service.set_line(session, desk.clock, _admin(), number, plan=plan, language=language, label=label)
    except ZhibanError as exc:
        _fail(exc.detail)
    typer.echo(f"{line.number}: the {line.plan} plan's support line ({line.language})")


@app.command("remove-line")
def remove_line(number: Annotated[str, typer.Argument(help="the line's number, E.164")]) -> None:
    """Remove a support line (its calls are kept)."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment
    from zhiban.hotline import service

    desk = from_environment()
    try:
        with desk.transaction() as session:
            service.remove_line(session, _admin(), number)
    except ZhibanError as exc:
        _fail(exc.detail)
    typer.echo(f"removed {number}")


@app.command("phone")
def phone(
    person: Annotated[str, typer.Argument(help="the person's e-mail address")],
    number: Annotated[str, typer.Argument(help="E.164 (+8613800138000), or '-' to clear")],
) -> None:
    """Set the phone number by which the hotline knows a caller."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment
    from zhiban.identity import service as identity

    desk = from_environment()
    try:
        with desk.transaction() as session:
            found = identity.find_person(session, person)
            if found is None:
                _fail(f"no person {person}")
                return
            identity.set_phone(session, _admin(), found.id, None if number == "-" else number)
    except ZhibanError as exc:
        _fail(exc.detail)
    typer.echo(f"{person}: {'no phone' if number == '-' else number}")
