"""`zhiban tickets …`: upkeep of ticket search."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from zhiban.core.clock import SystemClock
from zhiban.core.settings import get_settings
from zhiban.store.db import make_engine, session_factory, transaction

app = typer.Typer(help="Tickets: upkeep of ticket search.", no_args_is_help=True)


@app.command("reindex")
def reindex(
    batch: Annotated[int, typer.Option(min=1, max=5000, help="tickets cut per transaction")] = 500,
) -> None:
    """Cut the words of tickets that search does not know yet (filed before search existed), in batches."""
    import zhiban.store.models  # noqa: F401  (every table, so foreign keys resolve)
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
