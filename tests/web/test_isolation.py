"""Tenant isolation over the API: a customer of one organization never reads or changes another's data.

Every API route must appear in ISOLATION_CASES; the guard test fails when a new route is added without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.tenancy import World, bearer, build_world
from zhiban.desk import Desk


@dataclass
class Fixture:
    world: World
    liveco_ticket: int
    alice_token_id: str


@dataclass
class Case:
    method: str
    path: str  # route template
    request: Callable[[Fixture], tuple[str, dict[str, Any] | None]]  # (concrete path, json body) for Bob
    allowed: frozenset[int] = frozenset({403, 404})
    # After the attempt: an assertion that LiveCo's data is unchanged / not leaked.
    check: Callable[[TestClient, Fixture, Any], None] | None = None


def _no_liveco_data(client: TestClient, fx: Fixture, response: Any) -> None:
    text = response.text
    assert "LiveCo" not in text and fx.world.liveco not in text and "alice@liveco" not in text


def _ticket_unchanged(client: TestClient, fx: Fixture, response: Any) -> None:
    t = client.get(f"/api/v1/tickets/{fx.liveco_ticket}", headers=bearer(fx.world.agent_token)).json()
    assert t["status"] == "new" and t["priority"] == "P1" and len(t["comments"]) == 1


ISOLATION_CASES = [
    Case("GET", "/api/v1/tickets/{ticket_id}", lambda f: (f"/api/v1/tickets/{f.liveco_ticket}", None)),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/comments",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/comments", {"body": "hi"}),
        check=_ticket_unchanged,
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/status",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/status", {"status": "solved"}),
        check=_ticket_unchanged,
    ),
    Case(
        "PATCH",
        "/api/v1/tickets/{ticket_id}",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}", {"priority": "P4"}),
        check=_ticket_unchanged,
    ),
    # Listing answers 200 but with Bob's own data only.
    Case("GET", "/api/v1/tickets", lambda f: ("/api/v1/tickets", None), frozenset({200}), _no_liveco_data),
    Case(
        "GET",
        "/api/v1/tickets",
        lambda f: (f"/api/v1/tickets?organization_id={f.world.liveco}", None),
        frozenset({200}),
        _no_liveco_data,
    ),
    Case(
        "POST",
        "/api/v1/tickets",
        lambda f: ("/api/v1/tickets", {"subject": "s", "body": "b", "requester_id": f.world.alice_id}),
    ),
    Case("GET", "/api/v1/organizations", lambda f: ("/api/v1/organizations", None), frozenset({200}), _no_liveco_data),
    Case("GET", "/api/v1/organizations/{organization_id}", lambda f: (f"/api/v1/organizations/{f.world.liveco}", None)),
    Case(
        "POST",
        "/api/v1/organizations",
        lambda f: ("/api/v1/organizations", {"name": "x", "slug": "xx"}),
    ),
    Case("GET", "/api/v1/people", lambda f: ("/api/v1/people", None), frozenset({200}), _no_liveco_data),
    Case(
        "POST",
        "/api/v1/people",
        lambda f: (
            "/api/v1/people",
            {"email": "evil@x.test", "name": "e", "role": "customer", "organization_id": f.world.liveco},
        ),
    ),
    Case("DELETE", "/api/v1/tokens/{token_id}", lambda f: (f"/api/v1/tokens/{f.alice_token_id}", None)),
    # Bob's own identity and his own tokens are his to see and make.
    Case("GET", "/api/v1/me", lambda f: ("/api/v1/me", None), frozenset({200}), _no_liveco_data),
    Case("POST", "/api/v1/tokens", lambda f: ("/api/v1/tokens", {"name": "mine"}), frozenset({201}), _no_liveco_data),
]

# Routes that carry no tenant data at all.
PUBLIC_ROUTES = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect"}


def _api_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema and route.path not in PUBLIC_ROUTES:
            for method in route.methods - {"HEAD", "OPTIONS"}:
                found.add((method, route.path))
    return found


def test_every_api_route_has_an_isolation_case(app: FastAPI) -> None:
    covered = {(c.method, c.path) for c in ISOLATION_CASES}
    missing = _api_routes(app) - covered
    assert not missing, f"add isolation cases for: {sorted(missing)}"


@pytest.fixture
def fx(client: TestClient, desk: Desk) -> Fixture:
    world = build_world(desk)
    ticket = client.post(
        "/api/v1/tickets",
        json={"subject": "LiveCo outage", "body": "secret details", "priority": "P1"},
        headers=bearer(world.alice_token),
    ).json()["id"]
    token_id = client.post("/api/v1/tokens", json={"name": "alice-ci"}, headers=bearer(world.alice_token)).json()["id"]
    return Fixture(world, ticket, token_id)


@pytest.mark.parametrize("case", ISOLATION_CASES, ids=lambda c: f"{c.method} {c.path}")
def test_other_tenant_cannot_reach(client: TestClient, fx: Fixture, case: Case) -> None:
    path, body = case.request(fx)
    response = client.request(case.method, path, json=body, headers=bearer(fx.world.bob_token))
    assert response.status_code in case.allowed, response.text
    assert "secret details" not in response.text
    if case.check is not None:
        case.check(client, fx, response)
