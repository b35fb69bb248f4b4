"""`zhiban mail …`: run the inbound SMTP listener alone, take one mail from a file or a pipe, judge held mail,
and configure the support mailboxes read over IMAP (`zhiban mail mailbox …`)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from zhiban.core.console import console as cli_console
from zhiban.core.errors import NotFound, ZhibanError
from zhiban.core.settings import get_settings
from zhiban.desk import Desk, operator_transaction
from zhiban.identity.model import Principal, Role
from zhiban.mail.model import MAX_INBOUND_BYTES, MIN_POLL_SECONDS

app = typer.Typer(
    help="Ticket e-mail: the inbound SMTP listener, ingesting one mail, held mail, support mailboxes.",
    no_args_is_help=True,
)
mailbox_app = typer.Typer(help="Support mailboxes read over IMAP: add, list, poll now, remove.", no_args_is_help=True)
app.add_typer(mailbox_app, name="mailbox")
_OPERATOR = Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")
console = cli_console()
err = cli_console(stderr=True)

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


# --- support mailboxes (IMAP) -------------------------------------------------------------------


_operator = operator_transaction  # a transaction as the operator; a domain error is one line, exit 2


@mailbox_app.command("add")
def mailbox_add(
    name: Annotated[str, typer.Argument(help="a short name, e.g. support")],
    address: Annotated[str, typer.Option(help="the address customers write to; replies come from it")],
    host: Annotated[str, typer.Option(help="IMAP server")],
    user: Annotated[str, typer.Option(help="IMAP login")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, envvar="ZHIBAN_MAILBOX_PASSWORD", help="IMAP password (prompted if not given)"
        ),
    ],
    port: Annotated[int | None, typer.Option(help="IMAP port (993 with --security tls, else 143)")] = None,
    security: Annotated[str, typer.Option(help="tls (from the start), starttls or none")] = "tls",
    folder: Annotated[str, typer.Option(help="the folder read")] = "INBOX",
    move_to: Annotated[str | None, typer.Option(help="move filed mail to this folder (else flag it \\Seen)")] = None,
    authserv_id: Annotated[
        str, typer.Option(help="the provider's authserv-id whose Authentication-Results are believed")
    ] = "",
    poll_seconds: Annotated[int, typer.Option(min=MIN_POLL_SECONDS, help="seconds between polls without IDLE")] = 60,
    max_bytes: Annotated[int, typer.Option(help="larger mail is flagged and refused")] = MAX_INBOUND_BYTES,
    idle: Annotated[bool, typer.Option("--idle/--no-idle", help="wait with IDLE (holds a worker thread)")] = True,
    skip_existing: Annotated[
        bool, typer.Option(help="leave the mail already in the folder alone (else the first poll files it all)")
    ] = False,
) -> None:
    """Read a support mailbox: its mail becomes tickets and replies, as mail to the SMTP listener does."""
    from zhiban.mail.mailboxes import add_mailbox
    from zhiban.mail.model import MailboxSettings

    box = MailboxSettings(
        name=name,
        address=address,
        host=host,
        port=port if port is not None else (993 if security == "tls" else 143),
        security=security,
        username=user,
        password=password,
        folder=folder,
        after_filing="move" if move_to else "seen",
        move_to=move_to,
        authserv_id=authserv_id,
        poll_seconds=poll_seconds,
        max_message_bytes=max_bytes,
        idle=idle,
        skip_existing=skip_existing,
    )
    with _operator() as (desk, session):
        row = add_mailbox(session, desk.clock, _OPERATOR, box)
        console.print(f"mailbox {row.name} added ({row.id}); the worker polls it now", highlight=False)


@mailbox_app.command("list")
def mailbox_list() -> None:
    """Every support mailbox with its cursor, counts, last success and last error."""
    from zhiban.mail.mailboxes import list_mailboxes

    with _operator() as (_, session):
        table = Table("name", "address", "server", "folder", "cursor", "filed", "refused", "last success", "last error")
        for row in list_mailboxes(session, _OPERATOR):
            server = f"{row.username}@{row.host}:{row.port} ({row.security})"
            folder = row.folder + (f" -> {row.move_to}" if row.move_to else "")
            cursor = f"{row.uidvalidity}/{row.last_uid}" if row.uidvalidity is not None else "-"
            success = str(row.last_success_at) if row.last_success_at else "never"
            error = f"{row.last_error_at}: {row.last_error}" if row.last_error else ""
            table.add_row(
                row.name, row.address, server, folder, cursor, str(row.filed), str(row.refused), success, error
            )
        console.print(table)


@mailbox_app.command("poll")
def mailbox_poll(name: Annotated[str, typer.Argument(help="name or id of the mailbox")]) -> None:
    """Poll a mailbox now (e.g. after fixing its server's trouble)."""
    from zhiban.mail.mailboxes import poll_now

    with _operator() as (desk, session):
        row = poll_now(session, desk.clock, _OPERATOR, name)
        console.print(f"mailbox {row.name}: polled at the worker's next turn", highlight=False)


@mailbox_app.command("remove")
def mailbox_remove(name: Annotated[str, typer.Argument(help="name or id of the mailbox")]) -> None:
    """Stop reading a mailbox; its tickets stay (their replies come from the desk's address again)."""
    from zhiban.mail.mailboxes import remove_mailbox

    with _operator() as (_, session):
        row = remove_mailbox(session, _OPERATOR, name)
        console.print(f"mailbox {row.name} removed", highlight=False)
