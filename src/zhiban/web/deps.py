"""Request dependencies: the database session, the caller, CSRF, and the viewer's language."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, Unauthorized
from zhiban.core.i18n import pick_language
from zhiban.core.principal import Principal
from zhiban.desk import Desk

SESSION_COOKIE = "zhiban_session"
LANG_COOKIE = "zhiban_lang"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def desk_of(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


_READS_ONLY = "__zhiban_reads_only__"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def reads_only(endpoint: Endpoint) -> Endpoint:
    """Mark a GET route whose request only reads: its transaction is read-only (on SQLite it begins DEFERRED and
    never queues behind writers; a write in it fails loudly)."""
    setattr(endpoint, _READS_ONLY, True)
    return endpoint


_WRITES_ELSEWHERE = "__zhiban_writes_elsewhere__"


def writes_elsewhere(endpoint: Endpoint) -> Endpoint:
    """Mark a route whose request transaction only reads (its caller) while its writes are committed by a writer of
    their own (group commit): the request's transaction is read-only, so on SQLite it takes no write lock. Holding
    that lock from the dependency that authenticates to the handler, a worker-thread hop later, deadlocked a rush:
    every thread waited for the lock or a connection, and the holder for a thread to run its handler."""
    setattr(endpoint, _WRITES_ELSEWHERE, True)
    return endpoint


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back if it raises."""
    endpoint = request.scope.get("endpoint")
    if getattr(endpoint, _WRITES_ELSEWHERE, False) or (
        request.method in SAFE_METHODS and getattr(endpoint, _READS_ONLY, False)
    ):
        with desk_of(request).read_transaction() as session:
            yield session
        return
    with desk_of(request).transaction() as session:
        yield session


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in a worker thread, and each
# such hop costs more than the dependency itself on a busy desk (a filed ticket made seven of them).
async def get_clock(request: Request) -> Clock:
    return desk_of(request).clock


# "function": the transaction commits before the answer is sent, so a client told 201 can read what it wrote, and a
# commit that fails is answered as the error it is (FastAPI's default for a `yield` dependency ends it after the
# response went out: a 201 for a ticket that a failed commit then lost).
DB = Annotated[Session, Depends(get_db, scope="function")]
ClockDep = Annotated[Clock, Depends(get_clock)]


def release(session: Session) -> None:
    """End the request's transaction now and give its connection back to the pool: for a handler that has read what
    it needs (its caller) and then waits for a writer of its own (group commit), so that a rush of waiting requests
    holds no connection the writer needs. Using `session` afterwards is an error."""
    session.commit()


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# Who a bearer token or a session cookie is: identity answers (identity.hooks registers it at start-up),
# so that the web shell carries the principal without depending on the feature that decides it.
TokenResolver = Callable[[Session, Clock, str], Principal]
SessionResolver = Callable[[Session, Clock, str], "tuple[Principal, str] | None"]
_resolvers: dict[str, Any] = {}


def authenticate_with(*, token: TokenResolver, web_session: SessionResolver) -> None:
    """Resolve API tokens and web sessions with these (the identity feature's)."""
    _resolvers.update(token=token, web_session=web_session)


def _resolver(kind: str) -> Any:
    if kind not in _resolvers:
        raise RuntimeError("no authentication: the identity feature's hooks are not loaded")
    return _resolvers[kind]


def optional_principal(request: Request, session: DB) -> Principal | None:
    """The caller from a bearer token or a session cookie, or None; cookie writes need the CSRF token."""
    clock = desk_of(request).clock
    token = _bearer(request)
    if token is not None:
        principal: Principal = _resolver("token")(session, clock, token)
        request.state.principal = principal
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    resolved: tuple[Principal, str] | None = _resolver("web_session")(session, clock, cookie)
    if resolved is None:
        return None
    principal, csrf = resolved
    request.state.csrf_token = csrf
    request.state.principal = principal
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def check_csrf(request: Request) -> None:
    """Cookie-authenticated writes must carry the session's CSRF token (form field or header)."""
    if request.method in SAFE_METHODS or _bearer(request) is not None:
        return
    expected = getattr(request.state, "csrf_token", None)
    if expected is None:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, expected):
        raise Forbidden("missing or wrong CSRF token")


async def current_principal(principal: OptionalPrincipal) -> Principal:
    if principal is None:
        raise Unauthorized("sign in or send an API token (Authorization: Bearer …)")
    return principal


async def _csrf_dep(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    await check_csrf(request)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_csrf_dep)]


def viewer_language(request: Request) -> str:
    principal: Principal | None = getattr(request.state, "principal", None)
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        principal.language if principal else None,
        request.headers.get("accept-language"),
    )
