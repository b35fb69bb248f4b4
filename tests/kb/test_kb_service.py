"""Knowledge base in the database: import with versions, the persisted index, search and visibility."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tests.kb.kb_kit import SUBSET, VIDEO_FREEZE_ZH, copy_subset
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role
from zhiban.kb import service
from zhiban.kb.store import ArticleRow, ArticleVersionRow, IndexDocumentRow, IndexPostingRow

AGENT = Principal(person_id="agent-1", role=Role.AGENT, organization_id=None, name="Agent Wang")


def _people(engine: Engine, clock: FrozenClock) -> tuple[Principal, Principal]:
    """A real agent and a real customer (articles and votes point at people)."""
    with Session(engine) as s, s.begin():
        org = identity.create_organization(s, clock, name="LiveCo", slug="liveco")
        agent = identity.create_person(s, clock, email="wang@vendor.test", name="Agent Wang", role=Role.AGENT)
        alice = identity.create_person(
            s, clock, email="alice@liveco.test", name="Alice", role=Role.CUSTOMER, organization_id=org.id
        )
        return identity.principal_of(agent), identity.principal_of(alice)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return copy_subset(tmp_path / "kb")


def _import(engine: Engine, clock: FrozenClock, root: Path) -> service.ImportReport:
    with Session(engine) as s, s.begin():
        return service.import_corpus(s, clock, root)


def _versions(engine: Engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(ArticleVersionRow)) or 0


def test_import_search_and_reimport(engine: Engine, clock: FrozenClock, corpus: Path) -> None:
    report = _import(engine, clock, corpus)
    assert (report.files, report.created, report.updated, report.unchanged) == (len(SUBSET), len(SUBSET), 0, 0)
    with Session(engine) as s:
        hits = service.search(s, None, "视频画面卡顿怎么办")
        assert hits, "a Chinese question about video freezes finds nothing"
        top = s.get(ArticleRow, hits[0].article_id)
        assert top is not None and top.source_path == VIDEO_FREEZE_ZH and top.language == "zh"
        # Both language versions share a translation key: only the reader's is listed.
        assert [h.language for h in hits].count("zh") >= 1
        assert service.search(s, None, "best pizza recipe in Naples") == []
        assert service.search(s, None, "black screen remote video on iPad", lang="en") == []  # not in the subset
        stored = s.scalar(select(func.count()).select_from(IndexPostingRow))
        assert stored and stored > 500
    assert _versions(engine) == len(SUBSET)

    # Unchanged files: no new version, nothing re-indexed.
    clock.advance(timedelta(hours=1))
    again = _import(engine, clock, corpus)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(SUBSET))
    assert _versions(engine) == len(SUBSET)

    # One edited file: one new version of that article, and the new words are searchable.
    changed = corpus / SUBSET[5]
    changed.write_text(changed.read_text("utf-8") + "\n\nAlso check the quuxlephant setting.\n", "utf-8")
    third = _import(engine, clock, corpus)
    assert (third.created, third.updated, third.unchanged) == (0, 1, len(SUBSET) - 1)
    assert _versions(engine) == len(SUBSET) + 1
    with Session(engine) as s:
        article = s.scalar(select(ArticleRow).where(ArticleRow.source_path == SUBSET[5]))
        assert article is not None and article.version == 2
        assert [v.number for v in service.versions(s, AGENT, article.id)] == [2, 1]
        assert [h.article_id for h in service.search(s, None, "quuxlephant")] == [article.id]


def test_search_reads_the_stored_index_not_the_articles(engine: Engine, clock: FrozenClock, corpus: Path) -> None:
    _import(engine, clock, corpus)
    with Session(engine) as s:
        before = service.search(s, None, "no audio in the call", lang="en")
        assert before
    service._cache.clear()  # a new process: nothing cached
    with Session(engine) as s, s.begin():
        # Drop one article's index rows behind the service's back: a reload must reflect the table.
        victim = str(before[0].article_id)
        s.query(IndexPostingRow).filter(IndexPostingRow.doc_id == victim).delete()
        s.query(IndexDocumentRow).filter(IndexDocumentRow.doc_id == victim).delete()
    with Session(engine) as s:
        after = service.search(s, None, "no audio in the call", lang="en")
        assert victim not in {str(h.article_id) for h in after}, "search re-tokenized instead of reading the index"
    with Session(engine) as s, s.begin():
        service.rebuild_index(s)
    with Session(engine) as s:
        # The rebuild bumped the version: the cached copy is replaced without clearing it by hand.
        assert service.search(s, None, "no audio in the call", lang="en")[0].article_id == before[0].article_id


def test_internal_articles_are_for_staff_and_edits_add_versions(engine: Engine, clock: FrozenClock) -> None:
    agent, customer = _people(engine, clock)
    with Session(engine) as s, s.begin():
        draft = service.ArticleInput(
            title="Edge node sh-edge-07 failover runbook",
            body="Drain **sh-edge-07** with the zorbleflux switch, then page the network on-call.",
            language="en",
            public=False,
            tags=("runbook",),
        )
        article = service.create_article(s, clock, agent, draft)
        article_id = article.id
        with pytest.raises(Forbidden):
            service.create_article(s, clock, customer, draft)
    with Session(engine) as s:
        assert [h.article_id for h in service.search(s, agent, "zorbleflux")] == [article_id]
        assert service.search(s, customer, "zorbleflux") == []
        assert service.search(s, None, "zorbleflux") == []
        with pytest.raises(NotFound):
            service.get_article(s, customer, article_id)
        with pytest.raises(NotFound):
            service.get_article(s, None, article_id)
    clock.advance(timedelta(minutes=5))
    with Session(engine) as s, s.begin():
        same = service.update_article(s, clock, agent, article_id, draft)
        assert same.version == 1  # saving identical content adds no version
        published = service.ArticleInput(**{**draft.__dict__, "public": True, "body": draft.body + "\n\nVerified."})
        assert service.update_article(s, clock, agent, article_id, published).version == 2
    with Session(engine) as s:
        assert [h.article_id for h in service.search(s, customer, "zorbleflux")] == [article_id]
        history = service.versions(s, agent, article_id)
        assert [(v.number, v.public, v.author_label) for v in history] == [
            (2, True, "Agent Wang"),
            (1, False, "Agent Wang"),
        ]


def test_bad_input_is_refused(engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    bad = tmp_path / "kb" / "broken.md"
    bad.parent.mkdir()
    bad.write_bytes(b"# Title\n\xff\xfe not utf-8")
    with Session(engine) as s, s.begin(), pytest.raises(InvalidInput, match="not UTF-8"):
        service.import_corpus(s, clock, tmp_path / "kb")
    with Session(engine) as s, s.begin():
        with pytest.raises(InvalidInput):
            service.create_article(s, clock, AGENT, service.ArticleInput("t", "  ", "en"))
        with pytest.raises(InvalidInput):
            service.create_article(s, clock, AGENT, service.ArticleInput("t", "body", "fr"))
        with pytest.raises(InvalidInput):
            service.search(s, None, "x" * (service.MAX_QUERY + 1))
        assert s.scalar(select(func.count()).select_from(ArticleRow)) == 0


def test_seed_kb_without_a_corpus_logs_and_skips(engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    with Session(engine) as s, s.begin():
        assert service.seed_kb(s, clock, tmp_path / "missing") == 0
        assert s.scalar(select(func.count()).select_from(ArticleRow)) == 0
    found = service.find_corpus()
    assert found is None or (found / "agora-docs-portal").is_dir()
