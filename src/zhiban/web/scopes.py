"""Each route declares the token scope it needs; the declaration is a dependency, so tests can read it off the app.

`needs("tickets:write")` on a route, `by_method("kb:read", "kb:write")` on a router (safe methods need the first),
`AUTHENTICATED` where any signed-in caller may act on its own behalf, `PUBLIC` where the route takes no person's
token at all (it is open, or it has its own key). A browser session holds every scope, so only tokens are narrowed;
the role checks in the handlers and services still apply on top.
"""

# No `from __future__ import annotations` here: FastAPI resolves a callable object's string annotations against no
# module globals, so the dependencies' annotations must be real objects.
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

from zhiban.core.principal import SCOPES
from zhiban.web.deps import SAFE_METHODS, OptionalPrincipal


@dataclass(frozen=True)
class Needs:
    """A token must carry `scope`; an anonymous caller is left to the route's own sign-in check."""

    scope: str

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}")

    async def __call__(self, principal: OptionalPrincipal) -> None:  # async: no I/O, so no worker thread
        if principal is not None:
            principal.require_scope(self.scope)


@dataclass(frozen=True)
class ByMethod:
    """Reads (GET, HEAD) need `read`, anything else `write`: a router's default."""

    read: str
    write: str

    def __post_init__(self) -> None:
        for scope in (self.read, self.write):
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r}")

    async def __call__(self, request: Request, principal: OptionalPrincipal) -> None:
        if principal is not None:
            principal.require_scope(self.read if request.method in SAFE_METHODS else self.write)


@dataclass(frozen=True)
class Open:
    """No scope: `public` takes no person's token, `authenticated` lets any caller act on its own behalf."""

    kind: str

    async def __call__(self) -> None:
        return None


def needs(scope: str) -> Any:
    """The dependency declaring that a route needs `scope` (for `dependencies=[...]`)."""
    return Depends(Needs(scope))


def by_method(read: str, write: str) -> Any:
    return Depends(ByMethod(read, write))


PUBLIC: Any = Depends(Open("public"))
AUTHENTICATED: Any = Depends(Open("authenticated"))

Declaration = Needs | ByMethod | Open


@dataclass(frozen=True)
class RouteScopes:
    """What one route declares, and whether it resolves a person from a bearer token or a cookie."""

    methods: frozenset[str]
    path: str
    declared: tuple[Declaration, ...]
    takes_principal: bool


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def route_scopes(app: FastAPI) -> list[RouteScopes]:
    """Every API route of the app (included routers flattened) with its declarations."""
    from zhiban.web.deps import optional_principal

    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        calls = list(_calls(route.dependant))
        found.append(
            RouteScopes(
                methods=frozenset(route.methods or ()) - {"HEAD", "OPTIONS"},
                path=str(route.path),
                declared=tuple(c for c in calls if isinstance(c, Needs | ByMethod | Open)),
                takes_principal=optional_principal in calls,
            )
        )
    return found
