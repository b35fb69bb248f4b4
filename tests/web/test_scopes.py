"""Token scopes: every route declares the scope it needs, tokens are held to it, and no token mints a wider one.

The guard test fails when a route declares nothing (like the isolation guard in test_isolation.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from tests.tenancy import World, bearer, build_world
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import DEFAULT_SCOPES, SCOPES, Role, effective_scopes
from zhiban.identity.store import person_by_email
from zhiban.web.deps import SESSION_COOKIE, CurrentPrincipal
from zhiban.web.scopes import ByMethod, Needs, Open, RouteScopes, route_scopes

MISSING_SCOPE = "https://zhiban.dev/problems/missing-scope"
JSON = {"Accept": "application/json"}

# Routes that take no person's token at all: open, or keyed by their own secret. Adding one is a decision.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v2/enqueue"),
    ("POST", "/api/v1/integrations/alertmanager/{key}"),
    ("POST", "/api/v1/integrations/webhook/{key}"),
    ("POST", "/api/v1/heartbeats/{key}"),
    ("POST", "/api/v1/telemetry"),
    ("POST", "/api/v1/chat/slack/events"),  # Slack's signing secret
    ("POST", "/api/v1/chat/feishu/events"),  # Feishu's verification token, Encrypt Key and signature
    ("POST", "/api/v1/chat/dingtalk/events"),  # DingTalk's timestamp + sign with the robot's secret
    ("GET", "/api/v1/status"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/docs"),  # the API docs page: draws /openapi.json, which is open too; it holds no data
    # Twilio's voice webhooks: each request carries Twilio's signature (X-Twilio-Signature), checked first.
    ("POST", "/api/v1/hotline/twilio/voice"),
    ("POST", "/api/v1/hotline/twilio/voice/identify"),
    ("POST", "/api/v1/hotline/twilio/voice/menu"),
    ("POST", "/api/v1/hotline/twilio/voice/wait"),
    ("POST", "/api/v1/hotline/twilio/voice/recorded"),
    ("POST", "/api/v1/hotline/twilio/voice/recording"),
    ("POST", "/api/v1/hotline/twilio/page/ack"),
    ("POST", "/api/v1/hotline/twilio/page/status"),
}


def _undeclared(app: FastAPI) -> list[tuple[str, str]]:
    return sorted((m, r.path) for r in route_scopes(app) if not r.declared for m in r.methods)


def test_every_route_declares_the_scope_it_needs(app: FastAPI) -> None:
    routes = route_scopes(app)
    assert len(routes) > 150, "the app's routes were not found (included routers not flattened?)"
    assert not _undeclared(app), f"declare a scope (zhiban.web.scopes) on: {_undeclared(app)}"


def test_the_guard_catches_a_route_without_a_declaration(app: FastAPI) -> None:
    sneaky = APIRouter()

    @sneaky.post("/api/v1/sneaky")
    def sneaky_route(principal: CurrentPrincipal) -> None:
        return None

    app.include_router(sneaky)
    assert _undeclared(app) == [("POST", "/api/v1/sneaky")]


def test_the_api_accepts_every_scope_and_only_those() -> None:
    from typing import get_args

    from zhiban.identity.api import Scope

    assert set(get_args(Scope)) == SCOPES


def test_public_routes_are_exactly_the_known_ones(app: FastAPI) -> None:
    only_public = {
        (m, r.path)
        for r in route_scopes(app)
        for m in r.methods
        if r.declared and all(isinstance(d, Open) and d.kind == "public" for d in r.declared)
    }
    assert only_public == PUBLIC


# --- the probe's scenarios (issue 18 item 2), and the same calls with the right scope -------------------------------


def _mint(client: TestClient, token: str, scopes: list[str], name: str = "narrow") -> str:
    r = client.post("/api/v1/tokens", json={"name": name, "scopes": scopes}, headers=bearer(token))
    assert r.status_code == 201, r.text
    token_plain: str = r.json()["token"]
    return token_plain


def _refused(r: httpx.Response, scope: str | None = None) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["type"] == MISSING_SCOPE and body["status"] == 403
    if scope is not None:
        assert body["scope"] == scope


def test_an_admin_token_scoped_tickets_read_cannot_mint_admin_or_create_people_or_organizations(
    client: TestClient, desk: Desk
) -> None:
    w = build_world(desk)
    narrow = _mint(client, w.admin_token, ["tickets:read"])

    _refused(client.post("/api/v1/tokens", json={"name": "up", "scopes": ["admin"]}, headers=bearer(narrow)), "admin")
    person = {"email": "evil@vendor.test", "name": "Evil", "role": "admin"}
    _refused(client.post("/api/v1/people", json=person, headers=bearer(narrow)), "admin")
    org = {"name": "Evil Co", "slug": "evil-co"}
    _refused(client.post("/api/v1/organizations", json=org, headers=bearer(narrow)), "admin")
    assert client.get("/api/v1/tickets", headers=bearer(narrow)).status_code == 200  # what it does carry still works

    # Nothing was made; the admin's admin-scoped token can do all three.
    assert "evil@vendor.test" not in client.get("/api/v1/people", headers=bearer(w.admin_token)).text
    assert client.post("/api/v1/people", json=person, headers=bearer(w.admin_token)).status_code == 201
    assert client.post("/api/v1/organizations", json=org, headers=bearer(w.admin_token)).status_code == 201
    minted = client.post("/api/v1/tokens", json={"name": "up", "scopes": ["admin"]}, headers=bearer(w.admin_token))
    assert minted.status_code == 201 and minted.json()["scopes"] == ["admin"]


def test_an_admin_token_without_the_admin_scope_acts_as_an_agent(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    narrow = _mint(client, w.admin_token, list(DEFAULT_SCOPES))
    assert client.get("/api/v1/me", headers=bearer(narrow)).json()["role"] == "agent"
    # Revoking another person's token is an admin's power: refused (as "no such token"), then done with the scope.
    alice_tok = _mint(client, w.alice_token, ["tickets:read"], "alice-ci")
    alice_tok_id = client.post("/api/v1/tokens", json={"name": "x"}, headers=bearer(alice_tok)).json()["id"]
    assert client.delete(f"/api/v1/tokens/{alice_tok_id}", headers=bearer(narrow)).status_code == 404
    assert client.delete(f"/api/v1/tokens/{alice_tok_id}", headers=bearer(w.admin_token)).status_code == 204
    # Managing another organization's app is an admin's power too: telemetry:write alone does not reach it.
    _register_app(client, w)
    assert client.post("/api/v1/apps/liveco-live/rotate-key", headers=bearer(narrow)).status_code == 403
    assert client.post("/api/v1/apps/liveco-live/rotate-key", headers=bearer(w.admin_token)).status_code == 200


def _register_app(client: TestClient, w: World) -> None:
    r = client.post("/api/v1/apps", json={"app_id": "liveco-live"}, headers=bearer(w.alice_token))
    assert r.status_code == 201, r.text


def test_a_customer_tickets_read_token_cannot_widen_itself_nor_change_notices_nor_rotate_keys(
    client: TestClient, desk: Desk
) -> None:
    w = build_world(desk)
    _register_app(client, w)
    narrow = _mint(client, w.alice_token, ["tickets:read"])
    wider = {"name": "wide", "scopes": ["tickets:write", "incidents:write", "telemetry:write"]}
    refused = client.post("/api/v1/tokens", json=wider, headers=bearer(narrow))
    _refused(refused)
    assert set(refused.json()["scopes"]) == {"tickets:write", "incidents:write", "telemetry:write"}
    hook = {"url": "https://hooks.liveco.test/notices", "secret": "s" * 20}
    webhook = f"/api/v1/organizations/{w.liveco}/notice-webhook"
    _refused(client.put(webhook, json=hook, headers=bearer(narrow)), "telemetry:write")
    _refused(client.delete(webhook, headers=bearer(narrow)), "telemetry:write")
    _refused(client.post("/api/v1/apps/liveco-live/rotate-key", headers=bearer(narrow)), "telemetry:write")
    assert client.get(webhook, headers=bearer(w.alice_token)).json().get("url") in (None, "")

    # A token that carries telemetry:write does all of it; a subset of one's own scopes can be minted.
    telemetry = _mint(client, w.alice_token, ["telemetry:write"])
    assert client.put(webhook, json=hook, headers=bearer(telemetry)).status_code == 200
    rotated = client.post("/api/v1/apps/liveco-live/rotate-key", headers=bearer(telemetry))
    assert rotated.status_code == 200 and rotated.json()["ingest_key"]
    sub = client.post("/api/v1/tokens", json={"name": "sub", "scopes": ["tickets:read"]}, headers=bearer(narrow))
    assert sub.status_code == 201 and sub.json()["scopes"] == ["tickets:read"]


def test_a_token_minted_without_scopes_gets_its_minters_scopes_not_more(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    narrow = _mint(client, w.alice_token, ["tickets:write"])
    r = client.post("/api/v1/tokens", json={"name": "default"}, headers=bearer(narrow))
    assert r.status_code == 201 and set(r.json()["scopes"]) == {"tickets:read", "tickets:write"}
    from_admin = client.post("/api/v1/tokens", json={"name": "default"}, headers=bearer(w.admin_token)).json()
    assert "admin" not in from_admin["scopes"] and set(from_admin["scopes"]) == set(DEFAULT_SCOPES)


def test_a_browser_session_keeps_what_its_role_allows(client: TestClient, desk: Desk) -> None:
    build_world(desk)
    with desk.transaction() as s:
        admin = person_by_email(s, "admin@vendor.test")
        assert admin is not None and admin.role == Role.ADMIN
        opened = identity.open_web_session(s, desk.clock, admin)
    client.cookies.set(SESSION_COOKIE, opened.cookie_value)
    headers = {"x-csrf-token": opened.csrf_token}
    person = {"email": "new@vendor.test", "name": "New", "role": "agent"}
    assert client.post("/api/v1/people", json=person, headers=headers).status_code == 201
    minted = client.post("/api/v1/tokens", json={"name": "ops", "scopes": ["admin"]}, headers=headers)
    assert minted.status_code == 201
    # The customer's own session still cannot mint the admin scope: the role bounds it.
    client.cookies.clear()
    with desk.transaction() as s:
        alice = person_by_email(s, "alice@liveco.test")
        assert alice is not None
        opened = identity.open_web_session(s, desk.clock, alice)
    client.cookies.set(SESSION_COOKIE, opened.cookie_value)
    r = client.post(
        "/api/v1/tokens", json={"name": "x", "scopes": ["admin"]}, headers={"x-csrf-token": opened.csrf_token}
    )
    assert r.status_code == 422


# --- every declared route refuses a token without its scope --------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    needed: frozenset[str]


def _needed(route: RouteScopes, method: str) -> frozenset[str]:
    scopes: set[str] = set()
    for d in route.declared:
        if isinstance(d, Needs):
            scopes.add(d.scope)
        elif isinstance(d, ByMethod):
            scopes.add(d.read if method in ("GET", "HEAD") else d.write)
    return frozenset(scopes)


def _probes(app: FastAPI) -> list[Probe]:
    probes = []
    for route in route_scopes(app):
        for method in sorted(route.methods):
            needed = _needed(route, method)
            if needed:
                probes.append(Probe(method, route.path, needed))
    return probes


def _concrete(path: str) -> str:
    """A path with each {param} filled in; a scope is checked before the parameters are."""
    return re.sub(r"\{[^}]+\}", "1", path)


def _without(needed: frozenset[str]) -> tuple[str, ...]:
    """Every scope but the needed ones (a read also goes with its write, which implies it)."""
    drop = set(needed)
    drop |= {s.removesuffix(":read") + ":write" for s in needed if s.endswith(":read")}
    left = tuple(sorted(SCOPES - drop - {"admin"}))
    assert not needed <= effective_scopes(left)
    return left


def test_a_token_without_the_declared_scope_is_refused_on_every_route(client: TestClient, desk: Desk) -> None:
    probes = _probes(client.app)  # type: ignore[arg-type]
    assert len(probes) > 150
    w = build_world(desk)
    tokens: dict[tuple[str, ...], str] = {}
    wrong: list[str] = []
    with desk.transaction() as s:
        for scopes in {_without(p.needed) for p in probes} | {tuple(sorted(p.needed)) for p in probes}:
            tokens[scopes] = identity.create_token(s, desk.clock, person_id=w.admin_id, name="t", scopes=scopes).plain
    for p in probes:
        path = _concrete(p.path)
        lacking = client.request(p.method, path, headers={**JSON, **bearer(tokens[_without(p.needed)])})
        if lacking.status_code != 403 or lacking.json().get("type") != MISSING_SCOPE:
            wrong.append(f"{p.method} {p.path} without {sorted(p.needed)}: {lacking.status_code} {lacking.text[:120]}")
        # A token with exactly the declared scopes is never refused for a scope (not by the handler either).
        exact = bearer(tokens[tuple(sorted(p.needed))])
        ok = client.request(p.method, path, headers={**JSON, **exact}, follow_redirects=False)
        is_problem = ok.headers.get("content-type", "").startswith("application/problem+json")
        if is_problem and ok.json().get("type") == MISSING_SCOPE:
            wrong.append(f"{p.method} {p.path} refused a token with {sorted(p.needed)}: {ok.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_finer_scopes_stand_alone_an_agent_writes_articles_with_kb_write_only(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    article = {"title": "Echo on Android", "body": "Turn on AEC.", "language": "en"}
    tickets_only = _mint(client, w.agent_token, ["tickets:write"])
    _refused(client.post("/api/v1/kb/articles", json=article, headers=bearer(tickets_only)), "kb:write")
    kb_only = _mint(client, w.agent_token, ["kb:write"])
    assert client.post("/api/v1/kb/articles", json=article, headers=bearer(kb_only)).status_code == 201
    _refused(client.get("/api/v1/tickets", headers=bearer(kb_only)), "tickets:read")
