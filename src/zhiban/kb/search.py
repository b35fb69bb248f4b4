"""Bilingual BM25 search over knowledge-base articles, with a calibrated "no answer" floor.

Scoring is BM25F over two fields (title boosted, body), with IDF and average lengths computed per
document language, so a Chinese query is scored against Chinese articles with Chinese statistics and,
through the glossary, against English articles with English statistics (and vice versa).

Each query is cut into concepts (glossary terms and leftover words). A concept's credit in an
article is the best score of any of its wordings, capped at the most a single wording could earn; an
article's relevance is its credit divided by what the query's most informative concepts could earn (at most
`concept_budget` known ones and `unknown_budget` unknown words, so a long ticket is not held to every word it
contains), so it lies in [0, 1] and words the index has never seen push it down. That ratio is what the floor
is calibrated on, and a result in the reader's other language is discounted by `cross_language_weight`.

Persistence: `to_rows()` gives two plain row lists that map one-to-one onto two tables, e.g.

    kb_index_document(doc_id PK, language, title, translation_key, title_length, body_length)
    kb_index_posting(term, doc_id, title_tf, body_tf, PRIMARY KEY (term, doc_id))

and `SearchIndex.from_rows(documents, postings)` rebuilds the index; document frequencies and
average lengths are derived on load, so an article is added or removed by writing its rows only.
"""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zhiban.core.errors import InvalidInput
from zhiban.kb.glossary import Concept, Glossary, Phrase, default_glossary
from zhiban.kb.text import cjk_count, detect_language, strip_noise, tokenize

LANGUAGES = ("zh", "en")
MAX_QUERY_CHARS = 4000
MAX_LIMIT = 50
# How much of a ticket becomes the suggestion query: the subject and the start of the first message
# carry the symptom; a long log paste would only dilute the match.
TICKET_QUERY_CHARS = 600


@dataclass(frozen=True)
class Document:
    """What the index needs from an article."""

    id: str
    language: str
    title: str
    text: str
    translation_key: str | None = None  # zh/en versions of one article share it


@dataclass(frozen=True)
class Hit:
    """One search result; `score` in [0, 1] after the other-language discount."""

    id: str
    language: str
    title: str
    score: float


@dataclass(frozen=True)
class SearchParams:
    """Tuning knobs (defaults calibrated on kb/data/queries.jsonl and the tune half of kb/data/tickets_v2.jsonl)."""

    k1: float = 2.0
    b: float = 0.75
    title_boost: float = 4.0
    cross_language_weight: float = 0.85
    # The "no answer" decision: a question is answered when its best article's relevance reaches the floor; the
    # other articles shown must reach `runner_up_share` of the best one's (not the floor: on a long ticket a right
    # second answer often sits just under it). Relevance is already relative to what the query's most informative
    # concepts could earn, so one floor serves a one-line question and a whole ticket alike.
    # Chosen on the tune half of tickets_v2 with queries.jsonl held at >= 0.90 (bench/bench_kb.py prints both).
    # Tried and left out, because 5-fold cross-validation on the tune half gave no gain over the best article's
    # relevance alone (ROC AUC 0.87): a logistic model adding the margin over the runner-up, the share of the
    # best article's title the ticket names, the drop to the 5th article, or the query's length.
    floor: float = 0.28
    runner_up_share: float = 0.5
    # An unknown word in the other language's articles counts less against them: it is often
    # just a word the glossary lacks, not a sign of an off-topic question.
    other_language_unknown_weight: float = 0.5
    fuzzy_cutoff: float = 0.8
    # Between the zh and en versions of one article, the reader's wins unless the other beats it by this factor.
    twin_preference: float = 0.8
    # What an article could earn is counted over the query's `concept_budget` most informative known concepts and
    # at most `unknown_budget` unknown words: a long ticket (greetings, ids, log lines, a signature) must not make
    # the floor unreachable. None: every concept counts. Chosen with the floor on the tune half of tickets_v2 (budgets
    # 6-12 known x 1-4 unknown, floors 0.15-0.60; kb/data/README.md has the figures).
    concept_budget: int | None = 6
    unknown_budget: int | None = 3


@dataclass
class _DocRecord:
    id: str
    language: str
    title: str
    translation_key: str
    title_length: int
    body_length: int


@dataclass
class _LanguageStats:
    documents: int = 0
    title_total: int = 0
    body_total: int = 0
    document_frequency: dict[str, int] = field(default_factory=dict)

    @property
    def avg_title(self) -> float:
        return max(self.title_total / self.documents, 1.0) if self.documents else 1.0

    @property
    def avg_body(self) -> float:
        return max(self.body_total / self.documents, 1.0) if self.documents else 1.0

    def idf(self, term: str) -> float:
        df = self.document_frequency.get(term, 0)
        return math.log(1.0 + (self.documents - df + 0.5) / (df + 0.5))


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {LANGUAGES}, got {language!r}")
    return language


class SearchIndex:
    """In-memory inverted index; build it with `build()` or `from_rows()`."""

    def __init__(self, params: SearchParams | None = None, glossary: Glossary | None = None) -> None:
        self.params = params or SearchParams()
        self.glossary = glossary or default_glossary()
        self._docs: list[_DocRecord] = []
        self._doc_index: dict[str, int] = {}
        self._postings: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        self._stats: dict[str, _LanguageStats] = {lang: _LanguageStats() for lang in LANGUAGES}
        self._fuzzy_buckets: dict[str, dict[str, int]] | None = None

    # ---- building and persistence -------------------------------------------------------------

    @classmethod
    def build(
        cls, documents: Iterable[Document], params: SearchParams | None = None, glossary: Glossary | None = None
    ) -> SearchIndex:
        """Tokenize and index documents (ids must be unique)."""
        index = cls(params, glossary)
        for doc in documents:
            index._add(doc)
        return index

    def _add(self, doc: Document) -> None:
        _check_language(doc.language)
        if doc.id in self._doc_index:
            raise InvalidInput(f"document {doc.id!r} is indexed twice")
        title_terms = tokenize(doc.title)
        body_terms = tokenize(doc.text)
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for term in title_terms:
            counts[term][0] += 1
        for term in body_terms:
            counts[term][1] += 1
        record = _DocRecord(
            doc.id, doc.language, doc.title, doc.translation_key or doc.id, len(title_terms), len(body_terms)
        )
        self._insert(record, [(term, tf[0], tf[1]) for term, tf in counts.items()])

    def _insert(self, record: _DocRecord, postings: Iterable[tuple[str, int, int]]) -> None:
        number = len(self._docs)
        self._docs.append(record)
        self._doc_index[record.id] = number
        stats = self._stats[record.language]
        stats.documents += 1
        stats.title_total += record.title_length
        stats.body_total += record.body_length
        for term, title_tf, body_tf in postings:
            self._postings[term].append((number, title_tf, body_tf))
            stats.document_frequency[term] = stats.document_frequency.get(term, 0) + 1
        self._fuzzy_buckets = None

    def to_rows(self) -> tuple[list[dict[str, Any]], list[tuple[str, str, int, int]]]:
        """(document rows, posting rows (term, doc_id, title_tf, body_tf)) for storage in two tables."""
        documents = [
            {
                "doc_id": d.id,
                "language": d.language,
                "title": d.title,
                "translation_key": d.translation_key,
                "title_length": d.title_length,
                "body_length": d.body_length,
            }
            for d in self._docs
        ]
        postings = [
            (term, self._docs[n].id, title_tf, body_tf)
            for term, plist in sorted(self._postings.items())
            for n, title_tf, body_tf in plist
        ]
        return documents, postings

    @classmethod
    def from_rows(
        cls,
        documents: Iterable[dict[str, Any]],
        postings: Iterable[tuple[str, str, int, int]],
        params: SearchParams | None = None,
        glossary: Glossary | None = None,
    ) -> SearchIndex:
        """Rebuild an index from `to_rows()` output (e.g. read back from the database)."""
        index = cls(params, glossary)
        by_doc: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for term, doc_id, title_tf, body_tf in postings:
            by_doc[doc_id].append((term, int(title_tf), int(body_tf)))
        for row in documents:
            record = _DocRecord(
                str(row["doc_id"]),
                _check_language(str(row["language"])),
                str(row["title"]),
                str(row["translation_key"]),
                int(row["title_length"]),
                int(row["body_length"]),
            )
            if record.id in index._doc_index:
                raise InvalidInput(f"document {record.id!r} appears twice in the rows")
            index._insert(record, by_doc.pop(record.id, []))
        if by_doc:
            raise InvalidInput(f"postings for unknown documents: {sorted(by_doc)[:5]}")
        return index

    def __len__(self) -> int:
        return len(self._docs)

    # ---- querying ------------------------------------------------------------------------------

    def analyze(self, query: str) -> tuple[str, list[Concept]]:
        """The query's language and its concepts (glossary terms with translations, then other words)."""
        query = strip_noise(query)
        query_lang = detect_language(query)
        if query_lang == "zh":
            concepts, rest = self.glossary.find_zh(query)
            leftover = [self._correct(t) for t in tokenize(rest)]
        else:
            concepts, leftover = self.glossary.find_en([self._correct(t) for t in tokenize(query)])
        seen: set[str] = {t for c in concepts for p in c.original for t in p}
        for term in leftover:
            if term not in seen:
                seen.add(term)
                concepts.append(Concept(original=((term,),), translated=()))
        return query_lang, concepts

    def _correct(self, term: str) -> str:
        """A misspelled English word replaced by the most common indexed word close to it."""
        if len(term) < 4 or not term.isascii() or not term.isalpha():
            return term
        if any(term in self._stats[lang].document_frequency for lang in LANGUAGES):
            return term
        if self._fuzzy_buckets is None:
            buckets: dict[str, dict[str, int]] = defaultdict(dict)
            for lang in LANGUAGES:
                for word, df in self._stats[lang].document_frequency.items():
                    if word.isascii() and word.isalpha() and len(word) >= 3:
                        bucket = buckets[word[0]]
                        bucket[word] = bucket.get(word, 0) + df
            self._fuzzy_buckets = buckets
        best: tuple[float, int, str] | None = None
        matcher = difflib.SequenceMatcher(b=term, autojunk=False)
        for word, df in self._fuzzy_buckets.get(term[0], {}).items():
            if abs(len(word) - len(term)) > 2:
                continue
            matcher.set_seq1(word)
            if (
                matcher.real_quick_ratio() < self.params.fuzzy_cutoff
                or matcher.quick_ratio() < self.params.fuzzy_cutoff
            ):
                continue
            ratio = matcher.ratio()
            if ratio >= self.params.fuzzy_cutoff and (best is None or (ratio, df) > best[:2]):
                best = (ratio, df, word)
        return best[2] if best else term

    def _phrase_max(self, phrase: Phrase, stats: _LanguageStats) -> float:
        return sum(stats.idf(t) for t in phrase) * (self.params.k1 + 1.0)

    def _score_side(self, concepts: list[Concept], language: str, same_language: bool) -> dict[int, float]:
        """Relevance in [0, 1] of every article in `language` that matches any concept."""
        p = self.params
        stats = self._stats[language]
        if stats.documents == 0:
            return {}
        unknown_penalty = stats.idf("\x00") * (p.k1 + 1.0) * (1.0 if same_language else p.other_language_unknown_weight)
        totals: dict[int, float] = defaultdict(float)
        caps: list[float] = []
        unknown = 0
        for concept in concepts:
            wordings: list[Phrase] = []
            for phrase in (*concept.original, *concept.translated):
                if all(t in stats.document_frequency for t in phrase) and (
                    language == "zh" or not any(cjk_count(t) for t in phrase)
                ):
                    wordings.append(phrase)
            if not wordings:
                unknown += 1
                continue
            cap = min(self._phrase_max(w, stats) for w in wordings)
            caps.append(cap)
            best: dict[int, float] = defaultdict(float)
            for wording in set(wordings):
                for n, score in self._phrase_scores(wording, language, stats).items():
                    if score > best[n]:
                        best[n] = score
            for n, score in best.items():
                totals[n] += min(score, cap)
        caps.sort(reverse=True)
        counted = caps if p.concept_budget is None else caps[: p.concept_budget]
        unknowns = unknown if p.unknown_budget is None else min(unknown, p.unknown_budget)
        possible = sum(counted) + unknown_penalty * unknowns
        if possible <= 0:
            return {}
        return {n: s / possible for n, s in totals.items()}

    def _phrase_scores(self, phrase: Phrase, language: str, stats: _LanguageStats) -> dict[int, float]:
        p = self.params
        avg_title, avg_body = stats.avg_title, stats.avg_body
        scores: dict[int, float] = defaultdict(float)
        for term in phrase:
            idf = stats.idf(term)
            for n, title_tf, body_tf in self._postings.get(term, ()):
                doc = self._docs[n]
                if doc.language != language:
                    continue
                weighted = p.title_boost * title_tf / (1.0 - p.b + p.b * doc.title_length / avg_title)
                weighted += body_tf / (1.0 - p.b + p.b * doc.body_length / avg_body)
                scores[n] += idf * weighted * (p.k1 + 1.0) / (p.k1 + weighted)
        if len(phrase) > 1:
            # A multi-word wording counts only where all its words occur.
            need = set(phrase)
            return {n: s for n, s in scores.items() if all(self._has(n, t) for t in need)}
        return scores

    def _has(self, n: int, term: str) -> bool:
        return any(m == n for m, _, _ in self._postings.get(term, ()))

    def relevance(self, query: str, lang: str | None = None) -> list[Hit]:
        """Every matching article with its (discounted) relevance, best first, no floor applied."""
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
        query_lang, concepts = self.analyze(query)
        reader = _check_language(lang) if lang is not None else query_lang
        if not concepts:
            return []
        hits: dict[str, tuple[float, Hit]] = {}
        for language in LANGUAGES:
            discount = 1.0 if language == reader else self.params.cross_language_weight
            for n, relevance in self._score_side(concepts, language, language == query_lang).items():
                doc = self._docs[n]
                hit = Hit(doc.id, doc.language, doc.title, min(relevance, 1.0) * discount)
                # One version of a translated article is shown: the reader's, unless the other is much better.
                preference = hit.score * (1.0 if language == reader else self.params.twin_preference)
                kept = hits.get(doc.translation_key)
                if kept is None or preference > kept[0]:
                    hits[doc.translation_key] = (preference, hit)
        return sorted((h for _, h in hits.values()), key=lambda h: (-h.score, h.id))

    def search(self, query: str, lang: str | None = None, limit: int = 5) -> list[Hit]:
        """Best articles for a question; `lang` is the reader's language (default: the query's).

        Nothing when the best article falls under the floor ("no answer"); else the articles within
        `runner_up_share` of the best one."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
        hits = self.relevance(query, lang)
        if not hits or hits[0].score < self.params.floor:
            return []
        least = hits[0].score * self.params.runner_up_share
        return [h for h in hits if h.score >= least][:limit]


def ticket_query(subject: str, body: str) -> str:
    """The search query of a ticket (or a draft): its subject and the start of its message."""
    return " ".join(f"{subject} {body}".split())[:TICKET_QUERY_CHARS]
