"""Knowledge-base pages: the public help center, the agent editor, portal deflection, ticket suggestions."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markdown_it import MarkdownIt
from markupsafe import Markup

from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.kb import service
from zhiban.kb.api import ArticleId, Reader
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of, viewer_language
from zhiban.web.fields import TicketId
from zhiban.web.scopes import needs
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[needs("kb:read")])

# Raw HTML off: an article's Markdown can never inject markup or scripts; links are checked by
# markdown-it's own validator (no javascript: or data: URLs).
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(text: str) -> Markup:
    """Safe HTML of an article's Markdown."""
    return Markup(_markdown.render(text))  # html disabled: markdown-it escapes every tag


# ---- public help center --------------------------------------------------------------------------


@router.get("/help", response_class=HTMLResponse)
def help_center(
    request: Request, session: DB, principal: Reader, q: Annotated[str, Query(max_length=service.MAX_QUERY)] = ""
) -> Response:
    lang = viewer_language(request)
    if q.strip():
        results = service.search(session, principal, q, lang=lang, limit=10)
        return render(request, "kb/help.html", q=q, results=results, shelves=[])
    articles = service.list_articles(session, principal, language=lang, limit=500)
    shelves = [(category or "", list(items)) for category, items in groupby(articles, key=lambda a: a.category)]
    return render(request, "kb/help.html", q="", results=None, shelves=shelves)


@router.get("/help/articles/{article_id}", response_class=HTMLResponse)
def help_article(request: Request, session: DB, principal: Reader, article_id: ArticleId) -> Response:
    article = service.get_article(session, principal, article_id)
    return render(
        request,
        "kb/article.html",
        article=article,
        html=render_markdown(article.body),
        translations=service.translations(session, principal, article),
        voted=None,
    )


@router.post("/help/articles/{article_id}/vote", response_class=HTMLResponse)
def help_vote(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: Reader,
    article_id: ArticleId,
    helpful: Annotated[str, Form(pattern="^(yes|no)$")],
) -> Response:
    article = service.vote(session, clock, principal, article_id, helpful == "yes")
    return render(request, "kb/_vote.html", article=article, voted=helpful)


# ---- deflection in the customer portal -----------------------------------------------------------


@router.get("/portal/suggestions", response_class=HTMLResponse)
def portal_suggestions(
    request: Request,
    session: DB,
    principal: CurrentPrincipal,
    subject: Annotated[str, Query(max_length=200)] = "",
    body: Annotated[str, Query(max_length=100_000)] = "",
) -> Response:
    query = service.ticket_query(subject, body)
    results = service.search(session, principal, query, lang=viewer_language(request), limit=3) if query else []
    return render(request, "kb/_suggestions.html", results=results, query=query)


@router.post("/portal/deflect", response_class=HTMLResponse)
def portal_deflect(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    query: Annotated[str, Form(max_length=service.MAX_QUERY)],
    article_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
) -> Response:
    service.record_deflection(session, clock, principal, query=query, article_id=article_id)
    article = service.get_article(session, principal, article_id)
    return render(request, "kb/_deflected.html", article=article)


# ---- suggestions on the agent's ticket page ------------------------------------------------------


@router.get("/agent/kb/tickets/{ticket_id}/suggestions", response_class=HTMLResponse)
def ticket_suggestions(request: Request, session: DB, principal: CurrentPrincipal, ticket_id: TicketId) -> Response:
    principal.require_staff()
    results = service.suggest_for_ticket(session, principal, ticket_id)
    return render(request, "kb/_ticket_suggestions.html", results=results, ticket_id=ticket_id)


@router.post("/agent/kb/tickets/{ticket_id}/insert", response_class=HTMLResponse)
def insert_into_reply(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    article_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    body: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    service.record_insertion(session, clock, principal, ticket_id, article_id)
    article = service.get_article(session, principal, article_id)
    text = service.insertion_text(article, desk_of(request).settings.base_url)
    reply = f"{body.rstrip()}\n\n{text}" if body.strip() else text
    return render(request, "kb/_inserted.html", article=article, reply=reply[:100_000])


# ---- the agent's editor --------------------------------------------------------------------------


@router.get("/agent/kb", response_class=HTMLResponse)
def editor_list(
    request: Request, session: DB, principal: CurrentPrincipal, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    principal.require_staff()
    if q.strip():
        found = service.search(session, principal, q, limit=50)
        ids = [r.article_id for r in found]
        articles = [service.get_article(session, principal, i) for i in ids]
    else:
        articles = service.list_articles(session, principal, limit=500)
    return render(request, "kb/editor_list.html", articles=articles, q=q, total=service.count_articles(session))


@router.get("/agent/kb/new", response_class=HTMLResponse)
def editor_new(request: Request, principal: CurrentPrincipal) -> Response:
    principal.require_staff()
    return render(request, "kb/editor.html", article=None, versions=[], form=None, error=None)


def _edit_form(
    title: Annotated[str, Form(max_length=300)],
    body: Annotated[str, Form(max_length=service.MAX_BODY)],
    language: Annotated[str, Form(pattern="^(zh|en)$")],
    public: Annotated[str | None, Form(max_length=8)] = None,
    category: Annotated[str, Form(max_length=64)] = "",
    tags: Annotated[str, Form(max_length=1500)] = "",
    translation_key: Annotated[str, Form(max_length=500)] = "",
) -> service.ArticleInput:
    return service.ArticleInput(
        title=title,
        body=body,
        language=language,
        public=bool(public),
        category=category or None,
        tags=tuple(t.strip() for t in tags.split(",") if t.strip()),
        translation_key=translation_key or None,
    )


# The editor's fields, parsed once for both the new-article and the edit form.
ArticleForm = Annotated[service.ArticleInput, Depends(_edit_form)]


@router.post("/agent/kb/new", dependencies=[needs("kb:write")])
def editor_create(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    data: ArticleForm,
) -> Response:
    try:
        article = service.create_article(session, clock, principal, data)
    except InvalidInput as exc:
        return render(request, "kb/editor.html", 422, article=None, versions=[], form=data, error=exc.detail)
    return RedirectResponse(f"/agent/kb/{article.id}", status_code=303)


@router.get("/agent/kb/{article_id}", response_class=HTMLResponse)
def editor_edit(request: Request, session: DB, principal: CurrentPrincipal, article_id: ArticleId) -> Response:
    principal.require_staff()
    article = service.get_article(session, principal, article_id)
    versions = service.versions(session, principal, article_id)
    return render(request, "kb/editor.html", article=article, versions=versions, form=None, error=None)


@router.post("/agent/kb/{article_id}", dependencies=[needs("kb:write")])
def editor_update(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    article_id: ArticleId,
    data: ArticleForm,
) -> Response:
    try:
        service.update_article(session, clock, principal, article_id, data)
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        article = service.get_article(session, principal, article_id)
        versions = service.versions(session, principal, article_id)
        return render(request, "kb/editor.html", 422, article=article, versions=versions, form=data, error=exc.detail)
    return RedirectResponse(f"/agent/kb/{article_id}", status_code=303)
