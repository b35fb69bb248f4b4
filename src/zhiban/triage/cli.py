"""`zhiban triage …`: evaluate the classifier, retrain it with agents' corrections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zhiban.core.clock import SystemClock
from zhiban.kb.cli import one_line_errors, read_lines, transaction

app = typer.Typer(help="Ticket triage: evaluate and retrain the domain classifier.", no_args_is_help=True)


@app.command("eval")
@one_line_errors
def eval_(
    file: Annotated[Path, typer.Argument(help='JSONL of {"subject", "body", "domain", "lang"}')],
    held_out: Annotated[
        bool,
        typer.Option(
            "--held-out", help="train a fresh model on 70% of FILE and score the other 30% (no database needed)"
        ),
    ] = False,
) -> None:
    """Accuracy and confusion table of the desk's model (or of a held-out split) on labelled tickets."""
    from zhiban.triage import service
    from zhiban.triage.evaluate import evaluate_examples, format_triage, held_out_split
    from zhiban.triage.model import TriageModel, parse_examples

    examples = parse_examples(read_lines(file))
    if held_out:
        train, test = held_out_split(examples)
        typer.echo(f"held out: trained on {len(train)}, scored on {len(test)}")
        typer.echo(format_triage(evaluate_examples(TriageModel.train(train), test)))
        return
    with transaction() as session:
        version, model = service.current_model(session, SystemClock())
    seen = set(model.examples)
    overlap = sum(e in seen for e in examples)
    typer.echo(f"model version {version}; {overlap} of {len(examples)} tickets were in its training data")
    typer.echo(format_triage(evaluate_examples(model, examples)))


@app.command()
@one_line_errors
def retrain() -> None:
    """Train on the shipped labelled tickets plus stored corrections; store it as the new model version."""
    from zhiban.triage import service

    with transaction() as session:
        report = service.retrain(session, SystemClock())
    state = "trained" if report.trained else "unchanged (same examples as the current model)"
    typer.echo(
        f"triage model version {report.version} {state}: {report.examples} examples, {report.corrections} corrections"
    )
