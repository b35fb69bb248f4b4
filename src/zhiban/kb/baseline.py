"""Plain BM25 over each article's full text: the baseline `zhiban kb eval` prints beside the product's search.

Okapi BM25 from rank-bm25 (a dev dependency: only the evaluation uses it), over the article's title and text
cut by `kb.text.tokenize`, so the comparison is about ranking, not tokenizing. No glossary, no per-language
statistics, no translated twins folded together, no floor: it always answers unless no word matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec

from zhiban.core.errors import InvalidInput
from zhiban.kb.search import Document
from zhiban.kb.text import tokenize


def available() -> bool:
    """Whether rank-bm25 is installed (`uv sync` installs the dev group; a production install has no need)."""
    return find_spec("rank_bm25") is not None


class PlainBM25:
    """BM25Okapi over whole articles; `search` returns article ids, best first."""

    def __init__(self, documents: Sequence[Document]) -> None:
        from rank_bm25 import BM25Okapi  # imported here: a dev dependency

        if not documents:
            raise InvalidInput("no articles to rank")
        self._ids = [d.id for d in documents]
        self._bm25 = BM25Okapi([tokenize(f"{d.title}\n{d.text}") for d in documents])

    def search(self, query: str, limit: int = 5) -> list[str]:
        terms = tokenize(query)
        if not terms:
            return []
        scores = self._bm25.get_scores(terms)
        best = sorted(range(len(self._ids)), key=lambda i: (-scores[i], self._ids[i]))[:limit]
        return [self._ids[i] for i in best if scores[i] > 0]
