"""Sign-in pages: password login with throttling, logout, and the landing redirect."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import Unauthorized
from zhiban.core.i18n import translate
from zhiban.identity import ratelimit, service
from zhiban.identity.model import Principal
from zhiban.identity.ratelimit import LOGIN_CLIENT, LOGIN_PAIR
from zhiban.identity.service import SESSION_LIFETIME
from zhiban.web.deps import (
    DB,
    LANG_COOKIE,
    SESSION_COOKIE,
    ClockDep,
    OptionalPrincipal,
    check_csrf,
    desk_of,
    viewer_language,
)
from zhiban.web.scopes import AUTHENTICATED, PUBLIC
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False)
# The desk that serves the login form makes the unknown e-mail's hash now: made at the first unknown login, that
# answer would take twice as long as a known person's, and timing must not tell who exists.
service.prepare_logins()
LOGIN_CSRF_COOKIE = "zhiban_login_csrf"


def _safe_next(target: str | None) -> str | None:
    # Only same-site paths: an open redirect after login is a phishing tool.
    if target and target.startswith("/") and not target.startswith("//") and len(target) < 500:
        return target
    return None


def home_for(is_staff: bool) -> str:
    return "/agent/queue" if is_staff else "/portal"


@router.get("/", dependencies=[AUTHENTICATED])
def home(principal: OptionalPrincipal) -> RedirectResponse:
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_for(principal.is_staff), status_code=303)


def _login_nonce(request: Request) -> str | None:
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return nonce if 20 <= len(nonce) <= 64 and nonce.isascii() else None


def _login_token(secret_key: str, nonce: str) -> str:
    return hmac.new(secret_key.encode(), f"login-csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


def _login_page(request: Request, status: int = 200, **context: Any) -> Response:
    """The sign-in form with a pre-session CSRF token: a signed copy of a nonce kept in a cookie (double submit)."""
    desk = desk_of(request)
    nonce = _login_nonce(request) or secrets.token_urlsafe(24)
    response = render(request, "login.html", status, login_csrf=_login_token(desk.secret_key, nonce), **context)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        nonce,
        max_age=86400,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=desk.settings.cookie_secure,
    )
    return response


def _login_csrf_ok(request: Request, sent: str) -> bool:
    # A cross-site form cannot read our cookie or forge its signature, so it cannot sign anyone in as itself.
    nonce = _login_nonce(request)
    return nonce is not None and hmac.compare_digest(sent, _login_token(desk_of(request).secret_key, nonce))


@router.get("/login", response_class=HTMLResponse, dependencies=[PUBLIC])
def login_page(request: Request, next: str | None = None) -> Response:
    response = _login_page(request, next=_safe_next(next))
    lang = request.query_params.get("lang")
    if lang in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/login", dependencies=[PUBLIC])
def login(
    request: Request,
    session: DB,
    clock: ClockDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str | None, Form(max_length=500)] = None,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    desk = desk_of(request)
    lang = viewer_language(request)
    if not _login_csrf_ok(request, csrf_token):
        return _login_page(request, 403, error=translate(lang, "login.expired"), email=email, next=next)
    client = ratelimit.client_of(request.client.host if request.client else None)
    pair, everyone = ratelimit.key_of(email.strip().lower(), client), ratelimit.key_of(client)
    now = clock.now()
    if ratelimit.exhausted(session, LOGIN_PAIR, pair, now) or ratelimit.exhausted(session, LOGIN_CLIENT, everyone, now):
        return _login_page(request, 429, error=translate(lang, "login.throttled"), email=email, next=next)
    try:
        person = service.authenticate(session, email, password)
    except Unauthorized:
        ratelimit.hit(session, LOGIN_PAIR, pair, now)
        ratelimit.hit(session, LOGIN_CLIENT, everyone, now)
        return _login_page(request, 401, error=translate(lang, "login.failed"), email=email, next=next)
    # The client's budget is not reset: one good account must not buy a stuffing run more tries.
    ratelimit.clear(session, LOGIN_PAIR, pair)
    opened = service.open_web_session(session, clock, person)
    target = _safe_next(next) or home_for(person.role in ("admin", "agent"))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie_value,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=desk.settings.cookie_secure,
    )
    response.set_cookie(LANG_COOKIE, person.language, max_age=365 * 86400, samesite="lax")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def _csrf_checked(request: Request, principal: OptionalPrincipal) -> Principal | None:
    """The caller, if any; a signed-in caller must send the session's CSRF token (no signing out from elsewhere)."""
    await check_csrf(request)
    return principal


@router.post("/logout", dependencies=[AUTHENTICATED])
def logout(
    request: Request, session: DB, principal: Annotated[Principal | None, Depends(_csrf_checked)]
) -> RedirectResponse:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal is not None:
        service.close_web_session(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
