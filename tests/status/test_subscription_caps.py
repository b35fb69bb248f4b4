"""Caps on status-page subscriptions per person and per organization: one update must not fan out without bound."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role

LIMIT = "https://zhiban.dev/problems/subscription-limit"
SECRET = "caps-test-secret-0123"


@pytest.fixture
def caps(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def set_caps(person: int | None = None, organization: int | None = None) -> None:
        for name, value in (("PERSON", person), ("ORGANIZATION", organization)):
            if value is not None:
                monkeypatch.setenv(f"ZHIBAN_STATUS_SUBSCRIPTIONS_PER_{name}", str(value))
        get_settings.cache_clear()

    set_caps()
    yield set_caps
    get_settings.cache_clear()


def _hook(n: int, page: str | None = None) -> dict[str, Any]:
    # Names that do not resolve are accepted when saved (they are judged again at each send).
    return {"webhook_url": f"https://hook-{n}.receiver.invalid/z", "webhook_secret": SECRET, "organization": page}


def test_a_person_holds_at_most_the_default_twenty(client: TestClient, desk: Desk, caps: Any) -> None:
    w = build_world(desk)
    for n in range(20):
        made = client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(n, "liveco"))
        assert made.status_code == 201, made.text
    refused = client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(20))
    assert refused.status_code == 422 and refused.json()["type"] == LIMIT
    assert refused.headers["content-type"].startswith("application/problem+json")
    # The same URL again is the same subscription, not a new one.
    again = client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(3, "liveco"))
    assert again.status_code == 201
    # Someone else is not held back by Alice's subscriptions.
    assert client.post("/api/v1/status/subscriptions", headers=bearer(w.bob_token), json=_hook(0)).status_code == 201


def test_unsubscribing_frees_a_place(client: TestClient, desk: Desk, caps: Any) -> None:
    caps(person=2)
    w = build_world(desk)
    first = client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(0))
    assert client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(1)).status_code == 201
    assert client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(2)).status_code == 422
    from zhiban.status import service as status
    from zhiban.status.store import SubscriptionRow

    with desk.transaction() as s:
        row = s.get(SubscriptionRow, first.json()["id"])
        assert row is not None
        status.unsubscribe(s, desk.clock, row.token)
    assert client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(2)).status_code == 201


def test_an_organization_holds_at_most_its_cap_together(client: TestClient, desk: Desk, caps: Any) -> None:
    caps(person=20, organization=3)
    w = build_world(desk)
    with desk.transaction() as s:
        carol = identity.create_person(
            s, desk.clock, email="carol@liveco.test", name="Carol", role=Role.CUSTOMER, organization_id=w.liveco
        )
        carol_token = identity.create_token(s, desk.clock, person_id=carol.id, name="t").plain
    for n in range(2):
        made = client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=_hook(n))
        assert made.status_code == 201
    assert client.post("/api/v1/status/subscriptions", headers=bearer(carol_token), json=_hook(7)).status_code == 201
    for token in (w.alice_token, carol_token):
        refused = client.post("/api/v1/status/subscriptions", headers=bearer(token), json=_hook(9))
        assert refused.status_code == 422 and refused.json()["type"] == LIMIT
    # Another organization has its own count.
    assert client.post("/api/v1/status/subscriptions", headers=bearer(w.bob_token), json=_hook(9)).status_code == 201
