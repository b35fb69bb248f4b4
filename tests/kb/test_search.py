"""BM25 bilingual search, its floor, persistence rows and evaluation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.kb.baseline import PlainBM25
from zhiban.kb.evaluate import (
    compare,
    default_queries,
    default_ticket_set,
    evaluate_search,
    format_comparison,
    format_eval,
    outcomes_of,
    parse_queries,
    search_ranking,
)
from zhiban.kb.parse import iter_corpus
from zhiban.kb.search import Document, SearchIndex, SearchParams, ticket_query

CORPUS = Path("/work/shared/data/kb")

DOCS = [
    Document(
        "en/echo",
        "en",
        "How can I solve echo problems?",
        "Echo: the speaker output is captured by the microphone. Use a headset, enable echo cancellation (AEC).",
        "echo",
    ),
    Document(
        "en/black",
        "en",
        "How can I fix black screen issues?",
        "A black screen on the remote side: check enableVideo, the token, and the camera permission.",
        "black",
    ),
    Document(
        "zh/black",
        "zh",
        "如何处理视频黑屏问题？",
        "远端黑屏：检查是否调用 enableVideo，检查 token 和摄像头权限。",
        "black",
    ),
    Document(
        "en/token",
        "en",
        "How to deal with token-related error codes?",
        "109: token expired. 110: token invalid. Call renewToken when onTokenPrivilegeWillExpire fires.",
        "token",
    ),
    Document("zh/hls", "zh", "HLS 延迟", "HLS 的延迟一般在 30 秒左右，减小切片时长 hls_fragment 可以降低延迟。", "hls"),
    Document(
        "en/billing",
        "en",
        "Billing and account suspension",
        "Accounts with an overdue balance are suspended after the grace period.",
        "billing",
    ),
]


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex.build(DOCS)


def test_chinese_question_finds_english_article_when_no_chinese_one(index: SearchIndex) -> None:
    hits = index.search("通话有回声怎么办")
    assert hits and hits[0].id == "en/echo"


def test_english_question_finds_chinese_article_when_no_english_one(index: SearchIndex) -> None:
    hits = index.search("hls latency too high")
    assert hits and hits[0].id == "zh/hls"


def test_reader_language_version_is_preferred_and_shown_once(index: SearchIndex) -> None:
    zh_hits = index.search("视频黑屏")
    assert zh_hits[0].id == "zh/black"
    assert "en/black" not in [h.id for h in zh_hits]  # one version per translated article
    en_hits = index.search("black screen remote video")
    assert en_hits[0].id == "en/black"
    assert index.search("black screen remote video", lang="zh")[0].id == "zh/black"


def test_error_code_query(index: SearchIndex) -> None:
    assert index.search("error 109")[0].id == "en/token"


def test_misspelling_is_corrected(index: SearchIndex) -> None:
    assert index.search("eccho problm")[0].id == "en/echo"


def test_out_of_domain_question_returns_nothing(index: SearchIndex) -> None:
    assert index.search("best pizza near me") == []
    assert index.search("今天天气怎么样") == []
    assert index.search("") == []


def test_scores_are_bounded_and_sorted(index: SearchIndex) -> None:
    hits = index.relevance("token expired renew")
    assert all(0.0 < h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_rows_round_trip_gives_identical_results(index: SearchIndex) -> None:
    documents, postings = index.to_rows()
    assert {d["doc_id"] for d in documents} == {d.id for d in DOCS}
    assert all(isinstance(p[0], str) and p[2] + p[3] > 0 for p in postings)
    restored = SearchIndex.from_rows(reversed(documents), list(reversed(postings)))
    for query in ("通话有回声怎么办", "black screen", "error 109", "HLS 延迟"):
        assert restored.search(query) == index.search(query)


def test_from_rows_refuses_orphan_postings(index: SearchIndex) -> None:
    documents, postings = index.to_rows()
    with pytest.raises(InvalidInput):
        SearchIndex.from_rows(documents[1:], postings)


def test_bad_input_is_refused(index: SearchIndex) -> None:
    with pytest.raises(InvalidInput):
        index.search("echo", lang="fr")
    with pytest.raises(InvalidInput):
        index.search("echo", limit=0)
    with pytest.raises(InvalidInput):
        index.search("echo " * 2000)
    with pytest.raises(InvalidInput):
        SearchIndex.build([DOCS[0], DOCS[0]])


def test_evaluation_counts_empty_relevant_as_correct_when_nothing_returned(index: SearchIndex) -> None:
    lines = [
        '{"query": "echo problem", "relevant": ["en/echo"]}',
        '{"query": "best pizza near me", "relevant": []}',
        '{"query": "black screen", "relevant": ["en/billing"]}',
    ]
    result = evaluate_search(index, lines)
    assert result.n == 3
    assert result.recall_at_3 == pytest.approx(2 / 3)
    assert result.mrr == pytest.approx(2 / 3)
    assert format_eval(result).splitlines()[-1] == "kb recall@3=0.667 mrr=0.667 n=3"


def test_evaluation_rejects_malformed_lines(index: SearchIndex) -> None:
    with pytest.raises(InvalidInput):
        evaluate_search(index, ['{"query": "x"}'])
    for bad in (
        '{"subject": "echo", "body": "x", "answers": "en/echo"}',
        '{"subject": "echo", "body": 3, "answers": []}',
        '{"subject": "echo", "body": "x", "answers": [], "split": "test"}',
    ):
        with pytest.raises(InvalidInput, match="ticket line 1"):
            parse_queries([bad])


def test_chinese_words_count_only_against_chinese_articles() -> None:
    # An English page that quotes Chinese (the SRS sample page does) must not collect a Chinese ticket's
    # leftover words at the highest IDF of the English side.
    quoting = Document("en/scenarios", "en", "Use scenarios", "Customer quotes: 客户 自己 主要 投诉 平板 外放", "s")
    index = SearchIndex.build([*DOCS, quoting])
    ticket = "通话有回声，客户自己外放时主要在平板上，投诉很多"
    assert "en/scenarios" not in [h.id for h in index.relevance(ticket)]
    assert index.relevance(ticket)[0].id == "en/echo"


def test_no_answer_is_decided_on_the_best_article_and_the_rest_shown_relative_to_it(index: SearchIndex) -> None:
    query = "black screen token expired"
    hits = index.relevance(query)
    best = hits[0].score
    assert len(hits) >= 2
    shown = SearchIndex.build(DOCS, SearchParams(floor=best, runner_up_share=0.0)).search(query, limit=50)
    assert [h.id for h in shown] == [h.id for h in hits]  # runners-up under the floor still shown
    assert SearchIndex.build(DOCS, SearchParams(floor=best + 1e-6)).search(query) == []
    strict = SearchIndex.build(DOCS, SearchParams(floor=0.0, runner_up_share=1.0)).search(query)
    assert [h.score for h in strict] == [h.score for h in hits if h.score >= best]


def test_ticket_sets_are_searched_as_suggestions_and_reported_per_split(index: SearchIndex) -> None:
    lines = [
        '{"id": "a", "subject": "Echo problems", "body": "the speaker output echo, headset and echo cancellation",'
        ' "answers": ["en/echo"], "split": "tune"}',
        '{"id": "b", "subject": "Pizza", "body": "best pizza near me", "answers": [], "split": "tune"}',
        '{"id": "c", "subject": "error 109", "body": "token expired", "answers": ["en/token"], "split": "heldout"}',
        '{"id": "d", "subject": "invoice", "body": "please send the invoice", "answers": ["en/billing"],'
        ' "split": "heldout"}',
    ]
    labelled = parse_queries(lines)
    assert labelled[0].query == ticket_query("Echo problems", "the speaker output echo, headset and echo cancellation")
    assert [q.split for q in labelled] == ["tune", "tune", "heldout", "heldout"]
    ours = outcomes_of(search_ranking(index), labelled)
    nothing = outcomes_of(lambda q: [], labelled)
    rows = compare({"search": ours, "none": nothing})
    assert [(f.split, f.ranking) for f in rows] == [
        ("tune", "search"),
        ("tune", "none"),
        ("heldout", "search"),
        ("heldout", "none"),
    ]
    tune, _, held, held_none = rows
    assert (tune.answerable, tune.recall_at_1, tune.recall_at_3, tune.unanswerable, tune.left_unanswered) == (
        1,
        1.0,
        1.0,
        1,
        1.0,
    )
    assert held.answerable == 2 and held.recall_at_3 == 0.5 and held.left_unanswered is None
    assert held_none.recall_at_3 == 0.0
    table = format_comparison(rows).splitlines()
    assert table[0].split() == [
        "split",
        "ranking",
        "answerable",
        "recall@1",
        "recall@3",
        "MRR",
        "unanswerable",
        "left",
        "unanswered",
    ]
    assert table[1].split() == ["tune", "search", "1", "1.000", "1.000", "1.000", "1", "1.000"]
    assert table[3].split()[-1] == "-"
    # A set without splits is one part, "all".
    assert {f.split for f in compare({"search": outcomes_of(search_ranking(index), parse_queries(lines[:1]))})} == {
        "tune"
    }
    plain = parse_queries(['{"query": "echo", "relevant": ["en/echo"]}'])
    assert [f.split for f in compare({"search": outcomes_of(search_ranking(index), plain)})] == ["all"]


def test_plain_bm25_baseline_ranks_whole_articles_and_never_abstains_on_a_shared_word() -> None:
    bm25 = PlainBM25(DOCS)
    assert bm25.search("joinChannel fails with 110 token invalid")[0] == "en/token"
    assert bm25.search("远端黑屏")[0] == "zh/black"
    assert bm25.search("pizza") == []  # no word of the query in any article
    assert bm25.search("", limit=3) == []
    assert len(bm25.search("the screen echo token", limit=2)) == 2
    with pytest.raises(InvalidInput):
        PlainBM25([])


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_labelled_set_meets_recall_target_on_the_real_corpus() -> None:
    articles = list(iter_corpus(CORPUS))
    index = SearchIndex.build(
        Document(a.source_path, a.language, a.title, a.plain_text, a.translation_key) for a in articles
    )
    lines = default_queries()
    assert len(lines) >= 120
    paths = {a.source_path for a in articles}
    result = evaluate_search(index, lines)
    for outcome in result.outcomes:
        assert set(outcome.relevant) <= paths, outcome.query  # labels name real articles
    assert sum(1 for o in result.outcomes if not o.relevant) >= 15
    assert result.recall_at_3 >= 0.89
    assert re.fullmatch(r"kb recall@3=0\.\d{3} mrr=0\.\d{3} n=\d+", format_eval(result).splitlines()[-1])


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_whole_tickets_written_elsewhere_find_their_answer_on_the_held_out_half() -> None:
    """kb/data/tickets_v2.jsonl was written and labelled by someone who never read the ranking; its held-out half
    was never used to choose anything. Searched as suggestions search a ticket (subject + body, greetings, ids, log
    lines), held-out recall@3 was 0.06 under the old floor, 0.68 with the concept budgets, and is 0.81 now (plain
    BM25: 0.78); unanswerable tickets left without an answer 0.53 -> 0.59 (BM25 answers every one)."""
    documents = [
        Document(a.source_path, a.language, a.title, a.plain_text, a.translation_key) for a in iter_corpus(CORPUS)
    ]
    held_out = [q for q in parse_queries(default_ticket_set()) if q.split == "heldout"]
    ours, bm25 = compare(
        {
            "search": outcomes_of(search_ranking(SearchIndex.build(documents)), held_out),
            "bm25": outcomes_of(PlainBM25(documents).search, held_out),
        }
    )
    assert ours.answerable >= 60 and ours.unanswerable >= 15
    assert ours.recall_at_3 >= 0.75
    assert ours.left_unanswered is not None and ours.left_unanswered >= 0.5
    assert ours.recall_at_3 > bm25.recall_at_3
