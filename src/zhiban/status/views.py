"""Status pages: the public platform page, each organization's private page, Atom feeds, subscription links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from zhiban.core.errors import ZhibanError
from zhiban.identity.model import Principal
from zhiban.status import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, OptionalPrincipal, check_csrf, viewer_language
from zhiban.web.scopes import needs
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[needs("incidents:read")])

Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ATOM = "application/atom+xml; charset=utf-8"


async def _csrf_checked(request: Request, principal: OptionalPrincipal) -> Principal | None:
    """The caller, if any; a signed-in caller's form must carry its CSRF token (anonymous forms need none)."""
    await check_csrf(request)
    return principal


Caller = Annotated[Principal | None, Depends(_csrf_checked)]


def _show(request: Request, page: service.StatusPage, *, feed_url: str, subscribe_url: str) -> Response:
    return render(request, "status/page.html", page=page, feed_url=feed_url, subscribe_url=subscribe_url)


@router.get("/status", response_class=HTMLResponse)
def public_page(request: Request, session: DB, clock: ClockDep, principal: OptionalPrincipal) -> Response:
    tz = principal.timezone if principal else "UTC"
    page = service.build_page(session, clock, None, lang=viewer_language(request), tz=tz)
    return _show(request, page, feed_url="/status/feed.atom", subscribe_url="/status/subscribe")


@router.get("/status/feed.atom")
def public_feed(request: Request, session: DB, clock: ClockDep) -> Response:
    body = service.feed(
        session, clock, None, lang=viewer_language(request), self_url=f"{service.base_url()}/status/feed.atom"
    )
    return Response(body, media_type=ATOM)


@router.get("/status/org/{slug}", response_class=HTMLResponse)
def organization_page(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, slug: Slug
) -> Response:
    org = service.organization_for_page(session, principal, slug)
    page = service.build_page(session, clock, org, lang=viewer_language(request), tz=principal.timezone)
    token = service.feed_token(session, clock, org)
    return _show(
        request, page, feed_url=f"/status/org/{org.slug}/feed.atom?token={token}",
        subscribe_url=f"/status/org/{org.slug}/subscribe",
    )  # fmt: skip


@router.get("/status/org/{slug}/feed.atom")
def organization_feed(
    request: Request, session: DB, clock: ClockDep, slug: Slug, token: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    org = service.organization_by_feed_token(session, slug, token)
    self_url = f"{service.base_url()}/status/org/{org.slug}/feed.atom?token={token}"
    return Response(
        service.feed(session, clock, org, lang=viewer_language(request), self_url=self_url), media_type=ATOM
    )


def _subscribe(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: Principal | None,
    slug: str | None,
    email: str | None,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> Response:
    try:
        row = service.subscribe(
            session, clock, principal, organization_slug=slug, email=email or None, webhook_url=webhook_url or None,
            webhook_secret=webhook_secret or None, language=viewer_language(request),
            client=request.client.host if request.client else None,
        )  # fmt: skip
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        return render(request, "status/message.html", 422, message=exc.detail, back=_back(slug))
    key = "status.subscribed_webhook" if row.channel == "webhook" else "status.check_mail"
    return render(request, "status/message.html", 201, message_key=key, back=_back(slug))


def _back(slug: str | None) -> str:
    return f"/status/org/{slug}" if slug else "/status"


@router.post("/status/subscribe", response_class=HTMLResponse)
def subscribe_public(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: Caller,
    email: Annotated[str | None, Form(max_length=254)] = None,
    webhook_url: Annotated[str | None, Form(max_length=2000)] = None,
    webhook_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    return _subscribe(request, session, clock, principal, None, email, webhook_url, webhook_secret)


@router.post("/status/org/{slug}/subscribe", response_class=HTMLResponse)
def subscribe_private(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    slug: Slug,
    email: Annotated[str | None, Form(max_length=254)] = None,
    webhook_url: Annotated[str | None, Form(max_length=2000)] = None,
    webhook_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    return _subscribe(request, session, clock, principal, slug, email, webhook_url, webhook_secret)


@router.get("/status/subscriptions/{token}/{action}", response_class=HTMLResponse)
def subscription_link(
    request: Request, session: DB, token: Token, action: Annotated[str, Path(pattern="^(confirm|unsubscribe)$")]
) -> Response:
    # A button, not the GET itself: mail scanners follow links, and must not confirm or unsubscribe anyone.
    row = service.subscription_by_token(session, token)
    return render(request, "status/subscription.html", action=action, subscription=row)


@router.post("/status/subscriptions/{token}/{action}", response_class=HTMLResponse)
def subscription_action(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: Caller,
    token: Token,
    action: Annotated[str, Path(pattern="^(confirm|unsubscribe)$")],
) -> Response:
    if action == "confirm":
        row = service.confirm(session, clock, token)
        key = "status.confirmed" if row.unsubscribed_at is None else "status.unsubscribed"
    else:
        row = service.unsubscribe(session, clock, token)
        key = "status.unsubscribed"
    back = "/status"
    return render(request, "status/message.html", message_key=key, back=back)
