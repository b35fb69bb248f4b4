"""`zhiban kb …`: import articles, rebuild the search index, evaluate search quality."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from zhiban.core.clock import SystemClock
from zhiban.core.console import console as cli_console
from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.core.settings import get_settings
from zhiban.store.db import make_engine, session_factory

app = typer.Typer(help="Knowledge base: import articles, rebuild the index, evaluate search.", no_args_is_help=True)
err = cli_console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
PHASES = {"import": "reading articles", "index": "indexing"}


def one_line_errors(fn: F) -> F:
    """Bad input or a database without the tables: one clear line on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ZhibanError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            reason = str(orig if orig is not None else exc).splitlines()[0]
            typer.echo(f"error: database: {reason} (is the schema up to date? run `zhiban migrate`)", err=True)
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


@contextmanager
def transaction() -> Iterator[Session]:
    """A transaction on the configured database (ZHIBAN_DATABASE_URL)."""
    import zhiban.store.models  # noqa: F401  (every table, so foreign keys resolve)

    engine = make_engine(get_settings().database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            yield session
    finally:
        engine.dispose()


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file, or InvalidInput naming the problem."""
    try:
        return path.read_text("utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: no such file") from exc
    except (UnicodeDecodeError, OSError) as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.__class__.__name__})") from exc


@app.command("import")
@one_line_errors
def import_(path: Annotated[Path, typer.Argument(help="folder of .md/.mdx articles (or one file)")]) -> None:
    """Import every Markdown/MDX article under PATH (upsert by path; a changed file adds a version)."""
    from zhiban.kb import service

    with (
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as progress,
        transaction() as session,
    ):
        tasks: dict[str, TaskID] = {}

        def advance(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(PHASES.get(phase, phase), total=total)
            progress.update(tasks[phase], completed=done)

        report = service.import_corpus(session, SystemClock(), path, advance)
        total = service.count_articles(session)
    typer.echo(
        f"imported {report.files} files: {report.created} new, {report.updated} changed, "
        f"{report.unchanged} unchanged; {total} articles in the knowledge base"
    )


@app.command()
@one_line_errors
def reindex() -> None:
    """Tokenize every article again and replace the stored search index."""
    from zhiban.kb import service

    with transaction() as session:
        count = service.rebuild_index(session)
    typer.echo(f"indexed {count} articles")


@app.command("eval")
@one_line_errors
def eval_(
    file: Annotated[
        Path,
        typer.Argument(
            help='JSONL of questions {"query": str, "relevant": [source paths]} or of tickets '
            '{"subject": str, "body": str, "answers": [source paths], "split": "tune"|"heldout"}'
        ),
    ],
    misses: Annotated[bool, typer.Option("--misses/--no-misses", help="list the queries that missed")] = True,
) -> None:
    """Recall@1/@3, MRR and "no answer" right, per split, for search and for plain BM25 (imports nothing)."""
    from zhiban.kb import baseline, service
    from zhiban.kb.evaluate import (
        compare,
        format_comparison,
        format_eval,
        outcomes_of,
        parse_queries,
        result_of,
        search_ranking,
    )

    labelled = parse_queries(read_lines(file))  # a malformed file is refused before the index is loaded
    if not labelled:
        raise InvalidInput(f"{file}: no labelled queries")
    with transaction() as session:
        index = service.evaluation_index(session)
        documents = service.evaluation_documents(session) if baseline.available() else []
    if len(index) == 0:
        raise InvalidInput("the knowledge base is empty; run `zhiban kb import PATH` first")
    ours = outcomes_of(search_ranking(index), labelled)
    outcomes = {"search": ours}
    if documents:
        outcomes["bm25"] = outcomes_of(baseline.PlainBM25(documents).search, labelled)
    # The misses, the table, and last the line scripts read: `kb recall@3=… mrr=… n=…` (search, whole set).
    *missed, last = format_eval(result_of(ours), show_misses=misses).splitlines()
    table = format_comparison(compare(outcomes)).splitlines()
    absent = [] if documents else ["bm25: not measured (rank-bm25, a dev dependency, is not installed)"]
    typer.echo("\n".join([*missed, *table, *absent, last]))
