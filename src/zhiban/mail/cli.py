"""`zhiban mail …`: run the inbound SMTP listener alone, or take one mail from a file or a pipe."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.mail.model import MAX_INBOUND_BYTES

app = typer.Typer(help="Ticket e-mail: the inbound SMTP listener, and ingesting one mail.", no_args_is_help=True)
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
