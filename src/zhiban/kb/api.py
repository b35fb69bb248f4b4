"""Knowledge-base API: search, articles (staff edit with versions), votes and deflections."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from zhiban.core.errors import InvalidInput
from zhiban.identity.model import Principal
from zhiban.kb import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, OptionalPrincipal, check_csrf
from zhiban.web.fields import LongText, ShortText
from zhiban.web.scopes import needs

if TYPE_CHECKING:
    from zhiban.kb.store import ArticleRow

router = APIRouter(prefix="/api/v1/kb", tags=["knowledge base"])


def _printable(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


ArticleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="article number")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=service.MAX_TAG), AfterValidator(_printable)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=service.MAX_CATEGORY), AfterValidator(_printable)]
QueryText = Annotated[str, StringConstraints(min_length=1, max_length=service.MAX_QUERY), AfterValidator(_printable)]
Language = Literal["zh", "en"]


async def _reader(request: Request, principal: OptionalPrincipal) -> Principal | None:
    """The caller if signed in (anonymous readers are welcome); cookie writes still need the CSRF token."""
    await check_csrf(request)
    return principal


Reader = Annotated[Principal | None, Depends(_reader)]


class ArticleIn(BaseModel):
    title: ShortText
    body: LongText
    language: Language
    public: bool = True
    category: Category | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=service.MAX_TAGS)
    translation_key: ShortText | None = Field(None, description="shared by the zh and en versions of one article")

    def as_input(self) -> service.ArticleInput:
        return service.ArticleInput(
            self.title, self.body, self.language, self.public, self.category, tuple(self.tags), self.translation_key
        )


class VersionOut(BaseModel):
    number: int
    title: str
    author: str
    created_at: datetime


class TranslationOut(BaseModel):
    id: int
    language: str
    title: str


class ArticleOut(BaseModel):
    id: int
    title: str
    language: str
    body: str
    public: bool
    category: str | None
    tags: list[str]
    translation_key: str | None
    source_path: str | None
    version: int
    helpful: int
    not_helpful: int
    updated_at: datetime
    translations: list[TranslationOut]
    versions: list[VersionOut] | None = Field(None, description="history, newest first (staff only)")


class SearchHitOut(BaseModel):
    id: int
    title: str
    language: str
    score: float
    public: bool
    category: str | None
    summary: str
    url: str


class SearchOut(BaseModel):
    query: str
    results: list[SearchHitOut]


class VoteIn(BaseModel):
    helpful: bool


class VoteOut(BaseModel):
    article_id: int
    helpful: int
    not_helpful: int


class DeflectionIn(BaseModel):
    query: QueryText
    article_id: int = Field(ge=1, le=2**31 - 1)


class DeflectionOut(BaseModel):
    id: int
    article_id: int
    created_at: datetime


def _article_out(session: DB, principal: Principal | None, article: ArticleRow) -> ArticleOut:
    staff = principal is not None and principal.is_staff
    history = None
    if staff and principal is not None:
        history = [
            VersionOut(number=v.number, title=v.title, author=v.author_label, created_at=v.created_at)
            for v in service.versions(session, principal, article.id)
        ]
    return ArticleOut(
        id=article.id,
        title=article.title,
        language=article.language,
        body=article.body,
        public=article.public,
        category=article.category,
        tags=list(article.tags or []),
        translation_key=article.translation_key,
        source_path=article.source_path if staff else None,
        version=article.version,
        helpful=article.helpful_count,
        not_helpful=article.not_helpful_count,
        updated_at=article.updated_at,
        translations=[
            TranslationOut(id=t.id, language=t.language, title=t.title)
            for t in service.translations(session, principal, article)
        ],
        versions=history,
    )


@router.get(
    "/search",
    response_model=SearchOut,
    summary="Search the articles the caller may read",
    dependencies=[needs("kb:read")],
)
def search(
    session: DB,
    principal: Reader,
    q: Annotated[str, Query(min_length=1, max_length=service.MAX_QUERY)],
    lang: Language | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchOut:
    if "\x00" in q:
        raise InvalidInput("q must not contain NUL characters")
    results = service.search(session, principal, q, lang=lang, limit=limit)
    return SearchOut(
        query=q,
        results=[
            SearchHitOut(
                id=r.article_id,
                title=r.title,
                language=r.language,
                score=r.score,
                public=r.public,
                category=r.category,
                summary=r.summary,
                url=f"/help/articles/{r.article_id}",
            )
            for r in results
        ],
    )


@router.get("/articles/{article_id}", response_model=ArticleOut, summary="One article", dependencies=[needs("kb:read")])
def get(session: DB, principal: Reader, article_id: ArticleId) -> ArticleOut:
    return _article_out(session, principal, service.get_article(session, principal, article_id))


@router.post(
    "/articles",
    status_code=201,
    response_model=ArticleOut,
    summary="Write an article (agents)",
    dependencies=[needs("kb:write")],
)
def create(
    body: ArticleIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, response: Response
) -> ArticleOut:
    principal.require_scope("kb:write")
    article = service.create_article(session, clock, principal, body.as_input())
    response.headers["Location"] = f"/api/v1/kb/articles/{article.id}"
    return _article_out(session, principal, article)


@router.put(
    "/articles/{article_id}",
    response_model=ArticleOut,
    summary="Edit an article; a change adds a version",
    dependencies=[needs("kb:write")],
)
def update(
    body: ArticleIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, article_id: ArticleId
) -> ArticleOut:
    principal.require_scope("kb:write")
    article = service.update_article(session, clock, principal, article_id, body.as_input())
    return _article_out(session, principal, article)


@router.post(
    "/articles/{article_id}/vote",
    response_model=VoteOut,
    summary="Was this article helpful?",
    dependencies=[needs("kb:read")],
)
def vote(body: VoteIn, session: DB, clock: ClockDep, principal: Reader, article_id: ArticleId) -> VoteOut:
    article = service.vote(session, clock, principal, article_id, body.helpful)
    return VoteOut(article_id=article.id, helpful=article.helpful_count, not_helpful=article.not_helpful_count)


@router.post(
    "/deflections",
    status_code=201,
    response_model=DeflectionOut,
    summary="A ticket draft answered by an article",
    dependencies=[needs("kb:read")],
)
def deflect(body: DeflectionIn, session: DB, clock: ClockDep, principal: Reader) -> DeflectionOut:
    row = service.record_deflection(session, clock, principal, query=body.query, article_id=body.article_id)
    return DeflectionOut(id=row.id, article_id=row.article_id, created_at=row.created_at)
