"""Use cases of the knowledge base: import, edit with versions, search with visibility, votes, deflection."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput, NotFound
from zhiban.identity.model import Principal
from zhiban.kb import store
from zhiban.kb.parse import ARTICLE_SUFFIXES, SKIPPED_NAMES, ArticleDraft, markdown_to_text, parse_article
from zhiban.kb.search import LANGUAGES, MAX_LIMIT, Document, SearchIndex, ticket_query
from zhiban.kb.store import ArticleInsertionRow, ArticleRow, ArticleVersionRow, ArticleVoteRow, DeflectionRow
from zhiban.kb.text import detect_language

log = logging.getLogger("zhiban.kb")

MAX_TITLE = 300
MAX_BODY = 200_000
MAX_CATEGORY = 64
MAX_TAGS = 20
MAX_TAG = 64
MAX_TRANSLATION_KEY = 500
MAX_QUERY = 1000
SUMMARY_CHARS = 240
Progress = Callable[[str, int, int], None]  # (phase, done, total)


# ---- articles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleInput:
    """What an editor writes; validated by `clean_input`."""

    title: str
    body: str
    language: str
    public: bool = True
    category: str | None = None
    tags: tuple[str, ...] = ()
    translation_key: str | None = None


def clean_input(data: ArticleInput) -> ArticleInput:
    """Refuse an article that is empty, too long or in a language the desk does not serve."""
    title = " ".join(data.title.split())
    if not title:
        raise InvalidInput("an article needs a title")
    if len(title) > MAX_TITLE:
        raise InvalidInput(f"the title is longer than {MAX_TITLE} characters")
    body = data.body.replace("\r\n", "\n").strip()
    if not body:
        raise InvalidInput("the article body is empty")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the article body is longer than {MAX_BODY} characters")
    if data.language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}")
    category = (data.category or "").strip() or None
    if category is not None and len(category) > MAX_CATEGORY:
        raise InvalidInput(f"the category is longer than {MAX_CATEGORY} characters")
    tags = tuple(dict.fromkeys(t.strip() for t in data.tags if t.strip()))
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        raise InvalidInput(f"at most {MAX_TAGS} tags of at most {MAX_TAG} characters")
    key = (data.translation_key or "").strip() or None
    if key is not None and len(key) > MAX_TRANSLATION_KEY:
        raise InvalidInput(f"the translation key is longer than {MAX_TRANSLATION_KEY} characters")
    return ArticleInput(title, body + "\n", data.language, data.public, category, tags, key)


def _summary(body: str) -> str:
    text = " ".join(markdown_to_text(body).split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"


def _same_content(article: ArticleRow, data: ArticleInput) -> bool:
    return (
        article.title == data.title
        and article.body == data.body
        and article.language == data.language
        and article.public == data.public
        and article.category == data.category
        and list(article.tags or []) == list(data.tags)
        and article.translation_key == data.translation_key
    )


def _append_version(
    session: Session, clock: Clock, article: ArticleRow, author_id: str | None, author_label: str
) -> ArticleVersionRow:
    version = ArticleVersionRow(
        article_id=article.id,
        number=article.version,
        title=article.title,
        language=article.language,
        body=article.body,
        public=article.public,
        category=article.category,
        tags=list(article.tags or []),
        author_id=author_id,
        author_label=author_label[:200],
        created_at=clock.now(),
    )
    session.add(version)
    return version


def _write(
    session: Session,
    clock: Clock,
    article: ArticleRow | None,
    data: ArticleInput,
    *,
    author_id: str | None,
    author_label: str,
    source_path: str | None = None,
    reindex: bool = True,
) -> tuple[ArticleRow, bool]:
    """Create or change an article; a change appends a version. Returns (article, changed)."""
    now = clock.now()
    if article is not None and _same_content(article, data):
        return article, False
    if article is None:
        article = ArticleRow(source_path=source_path, version=1, created_at=now, helpful_count=0, not_helpful_count=0)
        session.add(article)
    else:
        article.version += 1
    article.title = data.title
    article.body = data.body
    article.summary = _summary(data.body)
    article.language = data.language
    article.public = data.public
    article.category = data.category
    article.tags = list(data.tags)
    article.translation_key = data.translation_key
    article.updated_at = now
    session.flush()
    _append_version(session, clock, article, author_id, author_label)
    session.flush()
    if reindex:
        reindex_article(session, article)
    return article, True


def create_article(session: Session, clock: Clock, principal: Principal, data: ArticleInput) -> ArticleRow:
    """An agent writes a new article (version 1)."""
    principal.require_staff()
    article, _ = _write(
        session, clock, None, clean_input(data), author_id=principal.person_id, author_label=principal.name
    )
    return article


def update_article(
    session: Session, clock: Clock, principal: Principal, article_id: int, data: ArticleInput
) -> ArticleRow:
    """An agent edits an article; any change appends a version, an identical save does not."""
    principal.require_staff()
    article = session.get(ArticleRow, article_id)
    if article is None:
        raise NotFound(f"no article #{article_id}")
    updated, _ = _write(
        session, clock, article, clean_input(data), author_id=principal.person_id, author_label=principal.name
    )
    return updated


def get_article(session: Session, principal: Principal | None, article_id: int) -> ArticleRow:
    """An article the caller may read: public ones for anyone, internal ones for staff only."""
    article = session.get(ArticleRow, article_id)
    # An internal article is reported as missing: its existence is not for customers.
    if article is None or not _may_read(principal, article.public):
        raise NotFound(f"no article #{article_id}")
    return article


def _may_read(principal: Principal | None, public: bool) -> bool:
    return public or (principal is not None and principal.is_staff)


def list_articles(
    session: Session, principal: Principal | None, *, language: str | None = None, limit: int = 200, offset: int = 0
) -> list[ArticleRow]:
    """Articles the caller may read, by category and title."""
    if not 1 <= limit <= 500 or offset < 0:
        raise InvalidInput("limit must be 1–500 and offset ≥ 0")
    staff = principal is not None and principal.is_staff
    return store.list_articles(session, public_only=not staff, language=language, limit=limit, offset=offset)


def translations(session: Session, principal: Principal | None, article: ArticleRow) -> list[ArticleRow]:
    """The other-language versions of an article that the caller may read."""
    return [a for a in store.translations_of(session, article) if _may_read(principal, a.public)]


def versions(session: Session, principal: Principal, article_id: int) -> list[ArticleVersionRow]:
    """An article's history, newest first (staff)."""
    principal.require_staff()
    get_article(session, principal, article_id)
    return store.versions_of(session, article_id)


def count_articles(session: Session) -> int:
    return store.count_articles(session)


# ---- import --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    files: int
    created: int
    updated: int
    unchanged: int


def article_files(root: Path) -> list[Path]:
    """Markdown/MDX files under root (or root itself if it is one file), in path order."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InvalidInput(f"{root} is neither a folder nor a file")
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix.lower() in ARTICLE_SUFFIXES and p.name not in SKIPPED_NAMES
    ]


def _import_input(draft: ArticleDraft) -> ArticleInput:
    meta = draft.front_matter
    internal = str(meta.get("visibility", "")).lower() == "internal" or meta.get("public") is False
    category = meta.get("category")
    if not isinstance(category, str) or not category.strip():
        # The top folder names the source (agora-docs-portal, srs-docs…): a fair shelf to group by.
        category = draft.source_path.split("/", 1)[0] if "/" in draft.source_path else None
    if not draft.plain_text.strip():
        raise InvalidInput(f"{draft.source_path}: the article has no text")
    return clean_input(
        ArticleInput(
            title=draft.title[:MAX_TITLE],
            body=draft.body_markdown,
            language=draft.language,
            public=not internal,
            category=category[:MAX_CATEGORY] if category else None,
            tags=tuple(t[:MAX_TAG] for t in draft.tags[:MAX_TAGS]),
            translation_key=draft.translation_key[:MAX_TRANSLATION_KEY],
        )
    )


@dataclass(frozen=True)
class CorpusFile:
    """One article file, read and parsed: where it is under the corpus, its digest, and what it says."""

    relative: str
    digest: str
    data: ArticleInput


def read_corpus(root: Path) -> list[CorpusFile]:
    """Read and parse every article file under root, touching no database: a bad file raises InvalidInput here,
    before anything is written, and the parsing (the slow part) holds no write lock (SQLite has one writer)."""
    base = root.parent if root.is_file() else root
    found = []
    for path in article_files(root):
        relative = path.resolve().relative_to(base.resolve()).as_posix()
        raw = path.read_bytes()
        found.append(CorpusFile(relative, hashlib.sha256(raw).hexdigest(), _import_input(parse_article(path, base))))
    return found


def import_corpus(
    session: Session, clock: Clock, corpus: Path | Sequence[CorpusFile], progress: Progress | None = None
) -> ImportReport:
    """Upsert every article of the corpus (a folder, or `read_corpus`'s files) by its relative path, then rebuild
    the search index.

    An unchanged file adds nothing; a changed one appends a version. A bad file raises InvalidInput,
    and the caller's transaction then stores nothing of the import.
    """
    files = read_corpus(corpus) if isinstance(corpus, Path) else corpus
    existing = store.articles_by_source_path(session)
    created = updated = unchanged = 0
    for done, file in enumerate(files, 1):
        article = existing.get(file.relative)
        if article is not None and article.source_digest == file.digest:
            unchanged += 1
        else:
            stored, changed = _write(
                session,
                clock,
                article,
                file.data,
                author_id=None,
                author_label="import",
                source_path=file.relative,
                reindex=False,
            )
            stored.source_digest = file.digest
            if article is None:
                created += 1
            elif changed:
                updated += 1
            else:
                unchanged += 1
        if progress is not None:
            progress("import", done, len(files))
    session.flush()
    if created or updated or store.index_state(session)[0] == 0:
        rebuild_index(session, progress)
    return ImportReport(len(files), created, updated, unchanged)


# The articles written for zhiban's demo and shipped in the package (their README says where they come from).
DEMO_ARTICLES = Path(__file__).resolve().with_name("demo_articles")


def demo_corpus() -> Path:
    """The folder of the demo articles that ship with zhiban (English and Chinese, paired by path)."""
    return DEMO_ARTICLES


def find_corpus() -> Path | None:
    """The evaluation corpus beside the project (../shared/data/kb from the repo root), if present.

    Only the search evaluation and benchmarks read it; the demo imports `demo_corpus()`."""
    project_root = Path(__file__).resolve().parents[3]
    for candidate in (project_root.parent / "shared" / "data" / "kb", Path.cwd().parent / "shared" / "data" / "kb"):
        if candidate.is_dir():
            return candidate
    return None


def seed_kb(session: Session, clock: Clock, corpus: Path | Sequence[CorpusFile] | None = None) -> int:
    """Import the demo corpus (idempotent; `corpus`: a folder or `read_corpus`'s files, default the shipped demo
    articles); a folder that is missing is logged and skipped. Returns the article count."""
    corpus = corpus if corpus is not None else demo_corpus()
    if isinstance(corpus, Path) and not corpus.is_dir():
        log.info("no knowledge-base corpus at %s; nothing imported", corpus)
        return store.count_articles(session)
    report = import_corpus(session, clock, corpus)
    counts = (report.created, report.updated, report.unchanged)
    log.info("knowledge base imported: %d created, %d updated, %d unchanged", *counts)
    return store.count_articles(session)


# ---- the persisted search index ------------------------------------------------------------------


def _document(article: ArticleRow) -> Document:
    text = markdown_to_text(article.body)
    if article.tags:
        text += "\n" + " ".join(article.tags)
    key = article.translation_key or f"article:{article.id}"
    return Document(str(article.id), article.language, article.title, text, key)


def _rows(article: ArticleRow) -> tuple[list[dict[str, Any]], list[tuple[str, str, int, int]]]:
    documents, postings = SearchIndex.build([_document(article)]).to_rows()
    for row in documents:
        row["public"] = article.public
        row["title"] = str(row["title"])[:MAX_TITLE]
    return documents, postings


def reindex_article(session: Session, article: ArticleRow) -> None:
    """Replace one article's index rows (only its own text is tokenized)."""
    store.delete_index_documents(session, [str(article.id)])
    documents, postings = _rows(article)
    store.write_index_rows(session, documents, postings)
    store.bump_index_version(session)


def rebuild_index(session: Session, progress: Progress | None = None) -> int:
    """Tokenize every article again and replace the stored index; returns the number indexed."""
    articles = store.list_articles(session, public_only=False, limit=1_000_000)
    store.delete_index_documents(session)
    documents: list[dict[str, Any]] = []
    postings: list[tuple[str, str, int, int]] = []
    for done, article in enumerate(articles, 1):
        docs, posts = _rows(article)
        documents.extend(docs)
        postings.extend(posts)
        if progress is not None:
            progress("index", done, len(articles))
    store.write_index_rows(session, documents, postings)
    store.bump_index_version(session)
    return len(articles)


@dataclass(frozen=True)
class _LoadedIndex:
    stamp: str
    everything: SearchIndex  # for staff
    public: SearchIndex  # for customers and anonymous readers: internal articles never scored


# Per process, and safe with several: each use reads the stored index's stamp and reloads when it changed.
_cache: dict[str, _LoadedIndex] = {}
_cache_lock = threading.Lock()


def _database_key(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=False)


def _loaded(session: Session) -> _LoadedIndex:
    """The stored index, read once per process and again only when its stamp changes."""
    key = _database_key(session)
    _, stamp = store.index_state(session)
    cached = _cache.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached
    with _cache_lock:
        documents, postings = store.read_index_rows(session)
        public_ids = {str(d["doc_id"]) for d in documents if d["public"]}
        loaded = _LoadedIndex(
            stamp,
            SearchIndex.from_rows(documents, postings),
            SearchIndex.from_rows([d for d in documents if d["public"]], [p for p in postings if p[1] in public_ids]),
        )
        _cache[key] = loaded
    return loaded


def _evaluation_name(article: ArticleRow) -> str:
    return article.source_path if article.source_path else f"article:{article.id}"


def evaluation_index(session: Session) -> SearchIndex:
    """The stored index with articles named by their source path, as labelled query sets name them."""
    documents, postings = store.read_index_rows(session)
    articles = store.articles_by_ids(session, (int(d["doc_id"]) for d in documents))
    names = {str(a.id): _evaluation_name(a) for a in articles.values()}
    renamed = [{**d, "doc_id": names.get(str(d["doc_id"]), str(d["doc_id"]))} for d in documents]
    return SearchIndex.from_rows(renamed, [(t, names.get(d, d), a, b) for t, d, a, b in postings])


def evaluation_documents(session: Session) -> list[Document]:
    """Every article's indexed text, named by its source path (what a baseline ranking is built on)."""
    articles = store.list_articles(session, public_only=False, limit=1_000_000)
    return [replace(_document(a), id=_evaluation_name(a)) for a in articles]


@dataclass(frozen=True)
class SearchResult:
    article_id: int
    title: str
    language: str
    score: float
    public: bool
    summary: str
    category: str | None


def search(
    session: Session, principal: Principal | None, query: str, *, lang: str | None = None, limit: int = 5
) -> list[SearchResult]:
    """Best articles for a question that the caller may read (internal ones for staff only)."""
    query = " ".join(query.split())
    if not query:
        return []
    if len(query) > MAX_QUERY:
        raise InvalidInput(f"the query is longer than {MAX_QUERY} characters")
    if lang is not None and lang not in LANGUAGES:
        raise InvalidInput(f"lang must be one of {', '.join(LANGUAGES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    loaded = _loaded(session)
    staff = principal is not None and principal.is_staff
    hits = (loaded.everything if staff else loaded.public).search(query, lang=lang, limit=limit)
    articles = store.articles_by_ids(session, (int(h.id) for h in hits))
    results = []
    for hit in hits:
        article = articles.get(int(hit.id))
        # The index may trail a concurrent edit by a moment; never show what the caller may not read.
        if article is None or not _may_read(principal, article.public):
            continue
        results.append(
            SearchResult(
                article.id,
                article.title,
                article.language,
                round(hit.score, 4),
                article.public,
                article.summary or "",
                article.category,
            )
        )
    return results


# ---- readers' feedback and self-service ----------------------------------------------------------


def vote(session: Session, clock: Clock, principal: Principal | None, article_id: int, helpful: bool) -> ArticleRow:
    """Count a "was this helpful?" answer; a signed-in reader has one vote per article and may change it."""
    article = get_article(session, principal, article_id)
    if principal is not None:
        previous = store.vote_of(session, article.id, principal.person_id)
        if previous is not None:
            if previous.helpful == helpful:
                return article
            _count(article, previous.helpful, -1)
            previous.helpful = helpful
            previous.at = clock.now()
        else:
            session.add(
                ArticleVoteRow(article_id=article.id, person_id=principal.person_id, helpful=helpful, at=clock.now())
            )
    _count(article, helpful, +1)
    session.flush()
    session.refresh(article)
    return article


def _count(article: ArticleRow, helpful: bool, step: int) -> None:
    # Arithmetic in SQL: two readers voting at once must both be counted.
    if helpful:
        article.helpful_count = ArticleRow.helpful_count + step
    else:
        article.not_helpful_count = ArticleRow.not_helpful_count + step


def record_deflection(
    session: Session, clock: Clock, principal: Principal | None, *, query: str, article_id: int
) -> DeflectionRow:
    """A ticket draft ended because this article answered it: counted, and no ticket is filed."""
    query = " ".join(query.split())
    if not query:
        raise InvalidInput("a deflection records the question the customer was asking")
    if len(query) > MAX_QUERY:
        raise InvalidInput(f"the query is longer than {MAX_QUERY} characters")
    article = get_article(session, principal, article_id)
    row = DeflectionRow(
        article_id=article.id,
        query=query,
        person_id=principal.person_id if principal else None,
        organization_id=principal.organization_id if principal else None,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def count_deflections(session: Session, article_id: int | None = None) -> int:
    return store.count_deflections(session, article_id)


def suggest_for_ticket(session: Session, principal: Principal, ticket_id: int, limit: int = 3) -> list[SearchResult]:
    """Articles that may answer a ticket the caller may see (staff also get internal ones)."""
    from zhiban.tickets import service as tickets

    view = tickets.get_ticket(session, principal, ticket_id)
    first = view.comments[0].body if view.comments else ""
    query = ticket_query(view.ticket.subject, first)
    return search(session, principal, query, lang=detect_language(query), limit=limit)


def record_insertion(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, article_id: int
) -> ArticleInsertionRow:
    """An agent put an article into a reply on a ticket."""
    from zhiban.tickets import service as tickets

    principal.require_staff()
    tickets.get_ticket(session, principal, ticket_id)
    article = get_article(session, principal, article_id)
    row = ArticleInsertionRow(
        article_id=article.id, ticket_id=ticket_id, agent_id=principal.person_id, created_at=clock.now()
    )
    session.add(row)
    session.flush()
    return row


def count_insertions(session: Session, ticket_id: int | None = None) -> int:
    return store.count_insertions(session, ticket_id)


def insertion_text(article: ArticleRow, base_url: str) -> str:
    """What goes into a reply: a link to a public article, the text itself of an internal one."""
    if article.public:
        return f"{article.title}\n{base_url.rstrip('/')}/help/articles/{article.id}"
    return article.body[:4000].rstrip()
