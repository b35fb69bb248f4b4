"""`zhiban tickets …`: who has a ticket and what it is tied to, from a terminal (as an agent, `--as EMAIL`), and the
upkeep of ticket search."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhiban.desk import Desk
    from zhiban.identity.model import Principal
    from zhiban.tickets.store import TicketRow

app = typer.Typer(help="Tickets: assign, take, tag, follow, link and merge; reindex search.", no_args_is_help=True)

TicketArg = Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="ticket number")]
AsOpt = Annotated[str, typer.Option("--as", help="e-mail address of the agent acting (recorded in the log)")]
ReasonOpt = Annotated[str | None, typer.Option(help="why (kept in the ticket's log)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the ticket as JSON")]


@contextmanager
def _acting(as_: str) -> Iterator[tuple[Desk, Session, Principal]]:
    """A transaction acting as the agent `as_`; a domain error is one `error:` line and exit code 2."""
    from zhiban.core.errors import NotFound
    from zhiban.desk import operator_transaction
    from zhiban.identity import service as identity

    with operator_transaction() as (desk, session):
        person = identity.person_with_email(session, as_.strip().lower())
        if person is None or not person.active:
            raise NotFound(f"no active person {as_!r}")
        yield desk, session, identity.principal_of(person)


def _show(session: Session, principal: Principal, ticket: TicketRow, as_json: bool) -> None:
    from zhiban.identity import service as identity
    from zhiban.tickets import ownership, service

    owned = ownership.ownership_of(session, principal, ticket.id)
    assignee = identity.person(session, ticket.assignee_id) if ticket.assignee_id else None
    team = identity.team(session, ticket.team_id, by_name=False) if ticket.team_id else None
    if as_json:
        import orjson

        fields = service.fields_of(session, [ticket.id]).get(ticket.id)
        out = {
            "id": ticket.id,
            "status": ticket.status,
            "priority": ticket.priority,
            "category": ticket.category,
            "assignee": {"id": assignee.id, "name": assignee.name} if assignee else None,
            "team_id": ticket.team_id,
            "tags": list(owned.tags),
            "followers": list(owned.followers),
            "related": list(owned.related),
            "merged_into": owned.merged_into,
            "merged_from": list(owned.merged_from),
            "fields": fields.as_json() if fields else None,
        }
        typer.echo(orjson.dumps(out).decode())
        return
    parts = [f"#{ticket.id} {ticket.status} {ticket.priority}"]
    parts.append(f"assignee {assignee.name if assignee else '-'}")
    parts.append(f"team {team.name if team else '-'}")
    if owned.tags:
        parts.append("tags " + ",".join(owned.tags))
    if owned.merged_into:
        parts.append(f"merged into #{owned.merged_into}")
    typer.echo(" · ".join(parts))


@app.command()
def assign(
    ticket: TicketArg,
    as_: AsOpt,
    to: Annotated[str | None, typer.Option(help="the agent's e-mail address ('-' for nobody)")] = None,
    team: Annotated[str | None, typer.Option(help="the team's name or id ('-' for none)")] = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a ticket to an agent and/or a team."""
    from zhiban.core.errors import InvalidInput
    from zhiban.identity import service as identity
    from zhiban.tickets import ownership, service

    with _acting(as_) as (desk, session, principal):
        if to is None and team is None:
            raise InvalidInput("give --to and/or --team")
        row = service.find(session, principal, ticket)
        if team is not None:
            found = identity.team(session, team) if team != "-" else None
            if team != "-" and found is None:
                raise InvalidInput(f"no team {team!r}")
            row = ownership.assign_team(
                session, desk.clock, principal, ticket, found.id if found else None, reason=reason
            )
        if to is not None:
            person = identity.person_with_email(session, to.strip().lower()) if to != "-" else None
            if to != "-" and person is None:
                raise InvalidInput(f"no person {to!r}")
            row = service.assign(session, desk.clock, principal, ticket, person.id if person else None, reason=reason)
        _show(session, principal, row, as_json)


@app.command()
def take(ticket: TicketArg, as_: AsOpt, as_json: JsonOpt = False) -> None:
    """Take a ticket: it is assigned to you."""
    from zhiban.tickets import ownership

    with _acting(as_) as (desk, session, principal):
        _show(session, principal, ownership.take(session, desk.clock, principal, ticket), as_json)


@app.command("auto-assign")
def auto_assign(ticket: TicketArg, as_: AsOpt, as_json: JsonOpt = False) -> None:
    """Assign within the ticket's team by round robin (members in their working hours first)."""
    from zhiban.tickets import ownership

    with _acting(as_) as (desk, session, principal):
        _show(session, principal, ownership.auto_assign(session, desk.clock, principal, ticket), as_json)


@app.command()
def tag(
    ticket: TicketArg,
    tags: Annotated[list[str], typer.Argument(help="tags to add (or remove with --remove)")],
    as_: AsOpt,
    remove: Annotated[bool, typer.Option("--remove", help="remove these tags")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag a ticket (or untag it)."""
    from zhiban.tickets import ownership

    with _acting(as_) as (desk, session, principal):
        if remove:
            for one in tags:
                row = ownership.remove_tag(session, desk.clock, principal, ticket, one)
        else:
            row = ownership.add_tags(session, desk.clock, principal, ticket, tags)
        _show(session, principal, row, as_json)


@app.command()
def follow(
    ticket: TicketArg,
    as_: AsOpt,
    stop: Annotated[bool, typer.Option("--stop", help="stop following")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Follow a ticket (or stop)."""
    from zhiban.tickets import ownership

    with _acting(as_) as (desk, session, principal):
        act = ownership.unfollow if stop else ownership.follow
        _show(session, principal, act(session, desk.clock, principal, ticket), as_json)


@app.command()
def link(
    ticket: TicketArg,
    other: Annotated[int, typer.Option("--to", min=1, max=2**31 - 1, help="the related ticket")],
    as_: AsOpt,
    remove: Annotated[bool, typer.Option("--remove", help="unlink them")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Link two tickets of one organization as related (or unlink them)."""
    from zhiban.tickets import ownership

    with _acting(as_) as (desk, session, principal):
        act = ownership.unlink if remove else ownership.link
        _show(session, principal, act(session, desk.clock, principal, ticket, other), as_json)


@app.command()
def merge(
    ticket: TicketArg,
    into: Annotated[int, typer.Option("--into", min=1, max=2**31 - 1, help="the ticket kept")],
    as_: AsOpt,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge a duplicate into the ticket kept: the duplicate is closed, pointing at it."""
    from zhiban.tickets import ownership

    with _acting(as_) as (desk, session, principal):
        row = ownership.merge(session, desk.clock, principal, ticket, into, reason=reason)
        _show(session, principal, row, as_json)


@app.command("reindex")
def reindex(
    batch: Annotated[int, typer.Option(min=1, max=5000, help="tickets cut per transaction")] = 500,
) -> None:
    """Cut the words of tickets that search does not know yet (filed before search existed), in batches."""
    from sqlalchemy.exc import SQLAlchemyError

    import zhiban.store.models  # noqa: F401  (every table, so foreign keys resolve)
    from zhiban.core.clock import SystemClock
    from zhiban.core.settings import get_settings
    from zhiban.store.db import make_engine, session_factory, transaction
    from zhiban.tickets import search

    engine = make_engine(get_settings().database_url)
    clock, total = SystemClock(), 0
    try:
        factory = session_factory(engine)
        while True:
            with transaction(factory) as session:
                done = search.index_pending(session, clock.now(), limit=batch)
            total += done
            if done < batch:
                break
            typer.echo(f"{total} tickets cut…")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        typer.echo(f"error: database: {reason} (is the schema up to date? run `zhiban migrate`)", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(f"{total} tickets cut; search knows every ticket")
