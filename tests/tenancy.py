"""A small world of two customer organizations and the vendor's staff, for API tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import DEFAULT_SCOPES, Role

PASSWORD = "correct horse battery"


@dataclass
class World:
    liveco: str
    classmate: str
    admin_token: str
    agent_token: str
    alice_token: str  # customer of LiveCo
    bob_token: str  # customer of ClassMate
    admin_id: str
    agent_id: str
    alice_id: str
    bob_id: str


def build_world(desk: Desk, *, passwords: bool = False) -> World:
    """Two tenants, one customer user each, an agent and an admin, each with an API token."""
    # argon2 is slow on purpose; only login tests pay for real password hashes.
    pw = PASSWORD if passwords else None
    with desk.transaction() as s:
        clock = desk.clock
        liveco = identity.create_organization(s, clock, name="LiveCo", slug="liveco", plan="enterprise")
        classmate = identity.create_organization(
            s, clock, name="ClassMate", slug="classmate", plan="standard", country="US", timezone="America/New_York"
        )
        admin = identity.create_person(s, clock, email="admin@vendor.test", name="Admin", role=Role.ADMIN, password=pw)
        agent = identity.create_person(
            s, clock, email="agent@vendor.test", name="Agent Wang", role=Role.AGENT, password=pw
        )
        alice = identity.create_person(
            s,
            clock,
            email="alice@liveco.test",
            name="Alice",
            role=Role.CUSTOMER,
            organization_id=liveco.id,
            password=pw,
        )
        bob = identity.create_person(
            s,
            clock,
            email="bob@classmate.test",
            name="Bob",
            role=Role.CUSTOMER,
            organization_id=classmate.id,
            password=pw,
        )
        tokens = {
            p.id: identity.create_token(
                s,
                clock,
                person_id=p.id,
                name="test",
                scopes=("admin",) if p is admin else DEFAULT_SCOPES,
            ).plain
            for p in (admin, agent, alice, bob)
        }
        return World(
            liveco=liveco.id,
            classmate=classmate.id,
            admin_token=tokens[admin.id],
            agent_token=tokens[agent.id],
            alice_token=tokens[alice.id],
            bob_token=tokens[bob.id],
            admin_id=admin.id,
            agent_id=agent.id,
            alice_id=alice.id,
            bob_id=bob.id,
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def web_login(client: Any, email: str, password: str = PASSWORD, **fields: str) -> Any:
    """Sign in through the login form as a browser does (its page first, for the pre-session CSRF token)."""
    page = client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "login page has no CSRF field"
    data = {"email": email, "password": password, "csrf_token": match.group(1), **fields}
    return client.post("/login", data=data, follow_redirects=False)
