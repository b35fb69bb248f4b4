"""Sign-in pages: password login with throttling, logout, and the landing redirect."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import Unauthorized
from zhiban.core.i18n import translate
from zhiban.identity import service
from zhiban.identity.ratelimit import LoginThrottle
from zhiban.identity.service import SESSION_LIFETIME
from zhiban.web.deps import DB, LANG_COOKIE, SESSION_COOKIE, ClockDep, OptionalPrincipal, desk_of, viewer_language
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False)
_throttle_lock = threading.Lock()


def _throttle(request: Request) -> LoginThrottle:
    """The app's login throttle (one per app: made with its first login)."""
    state = request.app.state
    with _throttle_lock:
        if getattr(state, "login_throttle", None) is None:
            state.login_throttle = LoginThrottle()
        throttle: LoginThrottle = state.login_throttle
    return throttle


def _safe_next(target: str | None) -> str | None:
    # Only same-site paths: an open redirect after login is a phishing tool.
    if target and target.startswith("/") and not target.startswith("//") and len(target) < 500:
        return target
    return None


def home_for(is_staff: bool) -> str:
    return "/agent/queue" if is_staff else "/portal"


@router.get("/")
def home(principal: OptionalPrincipal) -> RedirectResponse:
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_for(principal.is_staff), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    response = render(request, "login.html", next=_safe_next(next))
    lang = request.query_params.get("lang")
    if lang in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/login")
def login(
    request: Request,
    session: DB,
    clock: ClockDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str | None, Form(max_length=500)] = None,
) -> Response:
    desk = desk_of(request)
    throttle = _throttle(request)
    client = request.client.host if request.client else "?"
    keys = (f"email:{email.strip().lower()}", f"ip:{client}")
    lang = viewer_language(request)
    now = clock.now()
    if any(throttle.blocked(k, now) for k in keys):
        return render(request, "login.html", 429, error=translate(lang, "login.throttled"), email=email, next=next)
    try:
        person = service.authenticate(session, email, password)
    except Unauthorized:
        for k in keys:
            throttle.failed(k, now)
        return render(request, "login.html", 401, error=translate(lang, "login.failed"), email=email, next=next)
    for k in keys:
        throttle.succeeded(k)
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
    return response


@router.post("/logout")
def logout(request: Request, session: DB, principal: OptionalPrincipal) -> RedirectResponse:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal is not None:
        service.close_web_session(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
