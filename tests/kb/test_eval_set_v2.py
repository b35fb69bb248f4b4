"""Shape of the ticket evaluation set kb/data/tickets_v2.jsonl (its content, not search quality)."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from importlib import resources
from typing import Any

import pytest

from zhiban.kb.parse import iter_corpus
from zhiban.kb.service import find_corpus

FIELDS = {"id", "lang", "category", "subject", "body", "answers", "split", "notes"}
LANGS = {"zh", "en", "mixed"}
CATEGORIES = {"plain", "code_or_api", "long_with_logs", "cross_language", "unanswerable"}


@cache
def tickets() -> list[dict[str, Any]]:
    text = resources.files("zhiban.kb").joinpath("data/tickets_v2.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def answer_language(article_id: str) -> str:
    # The corpus marks Chinese pages with a zh-CN / zh-cn path segment; everything else is English.
    return "zh" if "/zh-CN/" in article_id or "/zh-cn/" in article_id else "en"


def test_every_line_is_a_complete_ticket() -> None:
    rows = tickets()
    assert len(rows) >= 160
    for row in rows:
        assert set(row) == FIELDS, row.get("id")
        assert row["lang"] in LANGS
        assert row["category"] in CATEGORIES
        assert row["split"] in {"tune", "heldout"}
        assert isinstance(row["subject"], str) and row["subject"].strip()
        assert isinstance(row["notes"], str) and row["notes"].strip()
        assert isinstance(row["answers"], list) and all(isinstance(a, str) for a in row["answers"])
        assert len(set(row["answers"])) == len(row["answers"]), row["id"]


def test_ids_are_unique() -> None:
    ids = [row["id"] for row in tickets()]
    assert len(ids) == len(set(ids))


def test_bodies_have_real_ticket_length() -> None:
    lengths = [len(row["body"]) for row in tickets()]
    within = sum(1 for n in lengths if 50 <= n <= 550)
    assert within >= 0.9 * len(lengths)


def test_category_matches_the_labels() -> None:
    # Unanswerable and cross-language are facts about the answers; the category must agree with them.
    for row in tickets():
        if not row["answers"]:
            assert row["category"] == "unanswerable", row["id"]
            continue
        cross = row["lang"] != "mixed" and all(answer_language(a) != row["lang"] for a in row["answers"])
        assert (row["category"] == "cross_language") == cross, row["id"]


def test_counts_per_category_and_language() -> None:
    rows = tickets()
    categories = Counter(row["category"] for row in rows)
    assert categories["unanswerable"] >= 30
    assert categories["cross_language"] >= 20
    assert categories["code_or_api"] >= 10
    assert categories["long_with_logs"] >= 8
    langs = Counter(row["lang"] for row in rows)
    for lang, share in (("zh", 0.45), ("en", 0.35), ("mixed", 0.20)):
        assert abs(langs[lang] / len(rows) - share) <= 0.06, (lang, langs[lang])


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_each_category_is_split_in_half(category: str) -> None:
    splits = Counter(row["split"] for row in tickets() if row["category"] == category)
    assert abs(splits["tune"] - splits["heldout"]) <= 1, splits


def test_each_language_is_split_in_half() -> None:
    for lang in LANGS:
        splits = Counter(row["split"] for row in tickets() if row["lang"] == lang)
        assert abs(splits["tune"] - splits["heldout"]) <= 3, (lang, splits)


def test_every_answer_is_an_article_of_the_corpus() -> None:
    root = find_corpus()
    if root is None:
        pytest.skip("the knowledge-base corpus ../shared/data/kb is not present")
    known = {draft.source_path for draft in iter_corpus(root)}
    missing = sorted({a for row in tickets() for a in row["answers"]} - known)
    assert not missing
