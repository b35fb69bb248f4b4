"""`zhiban mail …`: run the inbound SMTP listener alone, take one mail from a file or a pipe, judge held mail."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from zhiban.core.errors import NotFound, ZhibanError
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.identity.model import Principal
from zhiban.mail.model import MAX_INBOUND_BYTES

app = typer.Typer(
    help="Ticket e-mail: the inbound SMTP listener, ingesting one mail, and held mail.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

EX_DATAERR = 65  # sysexits: the mail was refused for good (an MTA's pipe transport bounces it)
EX_TEMPFAIL = 75  # sysexits: try again later (an MTA's pipe transport keeps it queued)


@app.command()
def listen(
    host: Annotated[str | None, typer.Option(help="address to bind (ZHIBAN_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind (ZHIBAN_INBOUND_SMTP_PORT)")] = None,
) -> None:
    """Run the inbound SMTP listener alone until Ctrl-C or SIGTERM."""
    from zhiban.core.logging import configure
    from zhiban.engine import install_signal_handlers
    from zhiban.mail.inbound import start_inbound

    settings = get_settings()
    configure(settings.log_level)
    bind_port = settings.inbound_smtp_port if port is None else port
    if bind_port == 0:
        err.print("[red]error:[/red] no port: set ZHIBAN_INBOUND_SMTP_PORT or pass --port", highlight=False)
        raise typer.Exit(2)
    listener = start_inbound(Desk(settings=settings), host=host, port=bind_port)
    stop = threading.Event()
    install_signal_handlers(stop)
    console.print(f"inbound SMTP on {listener.host}:{listener.port}; Ctrl-C to stop")
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()


@app.command()
def ingest(
    path: Annotated[str, typer.Argument(help="an .eml file, or - for standard input")] = "-",
    sender: Annotated[str | None, typer.Option(help="the envelope sender (MAIL FROM), if known")] = None,
    recipient: Annotated[
        list[str] | None, typer.Option(help="an envelope recipient (RCPT TO), e.g. $ORIGINAL_RECIPIENT; repeatable")
    ] = None,
) -> None:
    """Take one raw mail (e.g. from an MTA's pipe transport); exits 65 if refused, 75 to retry later."""
    from zhiban.features import load_hooks
    from zhiban.mail.inbound import deliver

    load_hooks()  # other features' reactions to a new ticket (SLA clocks, triage) run here too
    stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    with stream:
        raw = stream.read(MAX_INBOUND_BYTES + 1)
    reply = deliver(Desk(settings=get_settings()), raw, sender, recipient or [])
    console.print(reply, highlight=False)
    if reply.startswith("4"):
        raise typer.Exit(EX_TEMPFAIL)
    if not reply.startswith("2"):
        raise typer.Exit(EX_DATAERR)


@contextmanager
def _as_agent(email: str) -> Iterator[tuple[Desk, Session, Principal]]:
    """A transaction acting as the agent with this e-mail; domain errors become one line and exit 2."""
    from zhiban.identity.service import person_with_email, principal_of

    desk = Desk(settings=get_settings())
    try:
        with desk.transaction() as session:
            person = person_with_email(session, email)
            if person is None or not person.active:
                raise NotFound(f"no active person {email!r}")
            principal = principal_of(person)
            principal.require_staff()
            yield desk, session, principal
    except ZhibanError as exc:
        err.print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


AgentOpt = Annotated[str, typer.Option("--as", help="e-mail address of the agent")]


@app.command("held")
def held(
    as_: AgentOpt,
    state: Annotated[str, typer.Option(help="held, released or discarded")] = "held",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
) -> None:
    """Mail held because its sender was not authenticated, newest first."""
    from zhiban.mail.service import list_held_mail

    with _as_agent(as_) as (_, session, principal):
        rows = list_held_mail(session, principal, state=state, limit=limit)
        table = Table("id", "received", "from", "subject", "reason", "ticket")
        for row in rows:
            ticket = f"#{row.ticket_id}" if row.ticket_id else ""
            table.add_row(str(row.id), str(row.received_at), row.sender, row.subject, row.reason, ticket)
        console.print(table)


@app.command("release")
def release(held_id: Annotated[int, typer.Argument(min=1)], as_: AgentOpt) -> None:
    """File a held mail as its sender (you vouch that it is genuine)."""
    from zhiban.features import load_hooks
    from zhiban.mail.service import release_held_mail

    load_hooks()
    with _as_agent(as_) as (desk, session, principal):
        outcome = release_held_mail(session, desk.clock, principal, held_id, desk.settings)
        console.print(f"held mail {held_id} released: {outcome.action} ticket #{outcome.ticket_id}", highlight=False)


@app.command("discard")
def discard(held_id: Annotated[int, typer.Argument(min=1)], as_: AgentOpt) -> None:
    """Drop a held mail (forged or unwanted)."""
    from zhiban.mail.service import discard_held_mail

    with _as_agent(as_) as (desk, session, principal):
        discard_held_mail(session, desk.clock, principal, held_id)
        console.print(f"held mail {held_id} discarded", highlight=False)
