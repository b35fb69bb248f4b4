"""Search quality on a labelled set: recall@1/@3, MRR, and how often "no answer" was right.

A labelled set is JSONL of short questions, `{"query": str, "relevant": [path, ...]}` (kb/data/queries.jsonl),
or of whole tickets, `{"subject": str, "body": str, "answers": [path, ...], "split": "tune"|"heldout"}`
(kb/data/tickets_v2.jsonl; other fields are ignored). A ticket is searched as agent suggestions search it
(`search.ticket_query`). An empty list of answers means the knowledge base cannot answer: right when nothing
comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

import orjson

from zhiban.core.errors import InvalidInput
from zhiban.kb.search import SearchIndex, ticket_query

RECALL_DEPTH = 3
MAX_LINES = 20_000
SPLITS = ("tune", "heldout")
Ranking = Callable[[str], Sequence[str]]  # a query -> the article ids it returns, best first


@dataclass(frozen=True)
class LabelledQuery:
    """A question (or a ticket's query) and the articles (source paths) that answer it; empty: nothing should."""

    query: str
    relevant: tuple[str, ...]
    split: str | None = None  # "tune" / "heldout" in a ticket set


@dataclass(frozen=True)
class QueryOutcome:
    query: str
    relevant: tuple[str, ...]
    returned: tuple[str, ...]
    rank: int | None  # 1-based rank of the first relevant hit; for no-answer queries 1 if nothing came back
    split: str | None = None

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


@dataclass(frozen=True)
class Figures:
    """One ranking on one part of a set: recall and MRR where an answer exists, "no answer" where none does."""

    ranking: str
    split: str
    answerable: int
    recall_at_1: float
    recall_at_3: float
    mrr: float
    unanswerable: int
    left_unanswered: float | None  # share of unanswerable queries that got nothing back


def _ticket(row: dict[str, object], number: int) -> LabelledQuery:
    subject, body, answers, split = row.get("subject"), row.get("body"), row.get("answers"), row.get("split")
    if (
        not isinstance(subject, str)
        or not isinstance(body, str)
        or not isinstance(answers, list)
        or not all(isinstance(a, str) for a in answers)
    ):
        raise InvalidInput(f'ticket line {number}: expected {{"subject": str, "body": str, "answers": [str]}}')
    if split is not None and split not in SPLITS:
        raise InvalidInput(f"ticket line {number}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    return LabelledQuery(ticket_query(subject, body), tuple(answers), split if isinstance(split, str) else None)


def parse_queries(lines: Iterable[str]) -> list[LabelledQuery]:
    """JSONL lines of questions or of tickets (blank lines skipped); InvalidInput names the first bad line."""
    out: list[LabelledQuery] = []
    for number, line in enumerate(lines, 1):
        if number > MAX_LINES:
            raise InvalidInput(f"more than {MAX_LINES} lines; split the file")
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"query line {number}: not JSON ({exc})") from exc
        if isinstance(row, dict) and "subject" in row:
            out.append(_ticket(row, number))
            continue
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


def default_ticket_set() -> list[str]:
    """Lines of the shipped ticket set kb/data/tickets_v2.jsonl (tune and held-out halves)."""
    return resources.files("zhiban.kb").joinpath("data/tickets_v2.jsonl").read_text("utf-8").splitlines()


def outcomes_of(ranking: Ranking, labelled: Iterable[LabelledQuery]) -> list[QueryOutcome]:
    """What a ranking returned for each labelled query, and the rank of its first right answer."""
    outcomes: list[QueryOutcome] = []
    for item in labelled:
        returned = tuple(ranking(item.query))
        if not item.relevant:
            rank = 1 if not returned else None
        else:
            wanted = set(item.relevant)
            rank = next((i for i, doc_id in enumerate(returned, 1) if doc_id in wanted), None)
        outcomes.append(QueryOutcome(item.query, item.relevant, returned, rank, item.split))
    return outcomes


def search_ranking(index: SearchIndex, limit: int = 5) -> Ranking:
    """The product's ranking: `index.search`, floor and all."""
    return lambda query: [h.id for h in index.search(query, limit=limit)]


def evaluate_search(index: SearchIndex, lines: Iterable[str], limit: int = 5) -> EvalResult:
    """Recall@3 and MRR of `index.search` on labelled JSONL lines (no-answer queries count when nothing comes back)."""
    return result_of(outcomes_of(search_ranking(index, limit), parse_queries(lines)))


def result_of(outcomes: Sequence[QueryOutcome]) -> EvalResult:
    """Recall@3 and MRR over every outcome, a no-answer query counting as found at rank 1 when nothing came back."""
    n = len(outcomes)
    if n == 0:
        raise InvalidInput("no labelled queries to evaluate")
    recall = sum(o.hit_at_depth for o in outcomes) / n
    mrr = sum(1.0 / o.rank for o in outcomes if o.rank) / n
    return EvalResult(recall, mrr, n, tuple(outcomes))


def figures(ranking: str, split: str, outcomes: Sequence[QueryOutcome]) -> Figures:
    """Recall@1/@3 and MRR over the answerable outcomes; the share left unanswered of the others."""
    answerable = [o for o in outcomes if o.relevant]
    unanswerable = [o for o in outcomes if not o.relevant]
    n = len(answerable) or 1
    return Figures(
        ranking,
        split,
        len(answerable),
        sum(o.rank == 1 for o in answerable) / n,
        sum(o.hit_at_depth for o in answerable) / n,
        sum(1.0 / o.rank for o in answerable if o.rank) / n,
        len(unanswerable),
        sum(not o.returned for o in unanswerable) / len(unanswerable) if unanswerable else None,
    )


def compare(outcomes_by_ranking: Mapping[str, Sequence[QueryOutcome]]) -> list[Figures]:
    """Figures of every ranking on every split of the set (one part, "all", when the set has no splits)."""
    every = [o for outcomes in outcomes_by_ranking.values() for o in outcomes]
    parts = [s for s in SPLITS if any(o.split == s for o in every)]
    if not parts or any(o.split is None for o in every):
        parts.append("all")
    out: list[Figures] = []
    for name, outcomes in outcomes_by_ranking.items():
        for part in parts:
            chosen = [o for o in outcomes if part == "all" or o.split == part]
            out.append(figures(name, part, chosen))
    return sorted(out, key=lambda f: (parts.index(f.split), list(outcomes_by_ranking).index(f.ranking)))


def format_comparison(rows: Sequence[Figures]) -> str:
    """A table: one line per split and ranking."""
    lines = [
        f"{'split':<8} {'ranking':<8} {'answerable':>10} {'recall@1':>8} {'recall@3':>8} {'MRR':>6} "
        f"{'unanswerable':>12} {'left unanswered':>15}"
    ]
    for f in rows:
        left = f"{f.left_unanswered:.3f}" if f.left_unanswered is not None else "-"
        lines.append(
            f"{f.split:<8} {f.ranking:<8} {f.answerable:>10} {f.recall_at_1:>8.3f} {f.recall_at_3:>8.3f} "
            f"{f.mrr:>6.3f} {f.unanswerable:>12} {left:>15}"
        )
    return "\n".join(lines)


def format_eval(result: EvalResult, show_misses: bool = True) -> str:
    """Human-readable report ending with the line `kb recall@3=0.XXX mrr=0.XXX n=N`."""
    lines: list[str] = []
    if show_misses:
        for miss in result.misses:
            expected = ", ".join(p.rsplit("/", 1)[-1] for p in miss.relevant) or "(nothing)"
            got = ", ".join(p.rsplit("/", 1)[-1] for p in miss.returned[:3]) or "(nothing)"
            shown = miss.query if len(miss.query) <= 80 else miss.query[:79] + "…"
            lines.append(f"miss: {shown!r} expected {expected}; got {got}")
    lines.append(f"kb recall@3={result.recall_at_3:.3f} mrr={result.mrr:.3f} n={result.n}")
    return "\n".join(lines)
