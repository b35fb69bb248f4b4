"""Triage accuracy on labelled tickets, a confusion table, and the fixed held-out split."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from zhiban.core.errors import InvalidInput
from zhiban.triage.model import DOMAINS, TriageExample, TriageModel, parse_examples

HELD_OUT_SEED = 20261009
HELD_OUT_FRACTION = 0.3


@dataclass(frozen=True)
class TriageEval:
    accuracy: float
    n: int
    confusion: dict[tuple[str, str], int]  # (true domain, predicted domain) -> count


def default_tickets() -> list[str]:
    """Lines of the shipped labelled set triage/data/tickets.jsonl."""
    return resources.files("zhiban.triage").joinpath("data/tickets.jsonl").read_text("utf-8").splitlines()


def held_out_split(
    examples: Sequence[TriageExample], seed: int = HELD_OUT_SEED, fraction: float = HELD_OUT_FRACTION
) -> tuple[list[TriageExample], list[TriageExample]]:
    """(train, test): a stratified split by domain with a fixed seed."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        list(examples), test_size=fraction, random_state=seed, stratify=[e.domain for e in examples]
    )
    return list(train), list(test)


def evaluate_examples(model: TriageModel, examples: Iterable[TriageExample]) -> TriageEval:
    """Accuracy and confusion counts of `model` on labelled examples."""
    confusion: dict[tuple[str, str], int] = {}
    correct = n = 0
    for example in examples:
        predicted = model.predict(example.subject, example.body).domain
        confusion[(example.domain, predicted)] = confusion.get((example.domain, predicted), 0) + 1
        correct += predicted == example.domain
        n += 1
    if n == 0:
        raise InvalidInput("no labelled tickets to evaluate")
    return TriageEval(correct / n, n, confusion)


def evaluate_triage(model: TriageModel, lines: Iterable[str]) -> TriageEval:
    """Accuracy of `model` on JSONL ticket lines {"subject","body","domain","lang"}."""
    return evaluate_examples(model, parse_examples(lines))


def format_triage(result: TriageEval) -> str:
    """Confusion table (rows: true, columns: predicted) ending with `triage accuracy=0.XXX n=N`."""
    short = {d: d[:6] for d in DOMAINS}
    width = max(len(d) for d in DOMAINS)
    lines = [" " * width + " " + " ".join(f"{short[d]:>6}" for d in DOMAINS)]
    for true in DOMAINS:
        cells = " ".join(f"{result.confusion.get((true, pred), 0):>6}" for pred in DOMAINS)
        lines.append(f"{true:<{width}} {cells}")
    lines.append(f"triage accuracy={result.accuracy:.3f} n={result.n}")
    return "\n".join(lines)
