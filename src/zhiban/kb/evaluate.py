"""Search quality on a labelled query set: recall@3 and MRR, with "no answer" queries counted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

import orjson

from zhiban.core.errors import InvalidInput
from zhiban.kb.search import SearchIndex

RECALL_DEPTH = 3


@dataclass(frozen=True)
class LabelledQuery:
    """A question and the articles (source paths) that answer it; empty: nothing should be returned."""

    query: str
    relevant: tuple[str, ...]


@dataclass(frozen=True)
class QueryOutcome:
    query: str
    relevant: tuple[str, ...]
    returned: tuple[str, ...]
    rank: int | None  # 1-based rank of the first relevant hit; for no-answer queries 1 if nothing came back

    @property
    def hit_at_depth(self) -> bool:
        return self.rank is not None and self.rank <= RECALL_DEPTH


@dataclass(frozen=True)
class EvalResult:
    recall_at_3: float
    mrr: float
    n: int
    outcomes: tuple[QueryOutcome, ...] = field(default=())

    @property
    def misses(self) -> list[QueryOutcome]:
        return [o for o in self.outcomes if not o.hit_at_depth]


def parse_queries(lines: Iterable[str]) -> list[LabelledQuery]:
    """JSONL lines {"query": str, "relevant": [path, ...]} (blank lines skipped)."""
    out: list[LabelledQuery] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"query line {number}: not JSON ({exc})") from exc
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("query"), str)
            or not isinstance(row.get("relevant"), list)
        ):
            raise InvalidInput(f'query line {number}: expected {{"query": str, "relevant": [str]}}')
        out.append(LabelledQuery(row["query"], tuple(str(p) for p in row["relevant"])))
    return out


def default_queries() -> list[str]:
    """Lines of the shipped labelled set kb/data/queries.jsonl."""
    return resources.files("zhiban.kb").joinpath("data/queries.jsonl").read_text("utf-8").splitlines()


def evaluate_search(index: SearchIndex, lines: Iterable[str], limit: int = 5) -> EvalResult:
    """Recall@3 and MRR of `index.search` on labelled JSONL lines."""
    outcomes: list[QueryOutcome] = []
    for labelled in parse_queries(lines):
        hits = index.search(labelled.query, limit=limit)
        returned = tuple(h.id for h in hits)
        if not labelled.relevant:
            rank = 1 if not returned else None
        else:
            wanted = set(labelled.relevant)
            rank = next((i for i, doc_id in enumerate(returned, 1) if doc_id in wanted), None)
        outcomes.append(QueryOutcome(labelled.query, labelled.relevant, returned, rank))
    n = len(outcomes)
    if n == 0:
        raise InvalidInput("no labelled queries to evaluate")
    recall = sum(o.hit_at_depth for o in outcomes) / n
    mrr = sum(1.0 / o.rank for o in outcomes if o.rank) / n
    return EvalResult(recall, mrr, n, tuple(outcomes))


def format_eval(result: EvalResult, show_misses: bool = True) -> str:
    """Human-readable report ending with the line `kb recall@3=0.XXX mrr=0.XXX n=N`."""
    lines: list[str] = []
    if show_misses:
        for miss in result.misses:
            expected = ", ".join(p.rsplit("/", 1)[-1] for p in miss.relevant) or "(nothing)"
            got = ", ".join(p.rsplit("/", 1)[-1] for p in miss.returned[:3]) or "(nothing)"
            lines.append(f"miss: {miss.query!r} expected {expected}; got {got}")
    lines.append(f"kb recall@3={result.recall_at_3:.3f} mrr={result.mrr:.3f} n={result.n}")
    return "\n".join(lines)
