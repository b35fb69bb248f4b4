"""Checks for the KB and triage rows of tests/web/test_isolation.py: what Bob (ClassMate) must not reach."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.tenancy import bearer

SECRET_WORD = "zorbleflux"


def internal_article(client: TestClient, fx: Any) -> int:
    """An internal LiveCo runbook written by the agent."""
    r = client.post(
        "/api/v1/kb/articles",
        json={
            "title": f"LiveCo edge runbook {SECRET_WORD}",
            "body": f"Drain sh-edge-07 with the {SECRET_WORD} switch.",
            "language": "en",
            "public": False,
        },
        headers=bearer(fx.world.agent_token),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def internal_hidden(client: TestClient, fx: Any, response: Any) -> None:
    """Bob can neither find nor open an internal article, though the agent can."""
    article_id = internal_article(client, fx)
    staff = client.get(f"/api/v1/kb/search?q={SECRET_WORD}", headers=bearer(fx.world.agent_token)).json()
    assert [h["id"] for h in staff["results"]] == [article_id]
    bob = client.get(f"/api/v1/kb/search?q={SECRET_WORD}", headers=bearer(fx.world.bob_token))
    assert (
        bob.status_code == 200
        and bob.json()["results"] == []
        and SECRET_WORD not in bob.text.replace(f"q={SECRET_WORD}", "").replace(f'"query":"{SECRET_WORD}"', "")
    )
    assert client.get(f"/api/v1/kb/articles/{article_id}", headers=bearer(fx.world.bob_token)).status_code == 404
    assert client.get(f"/api/v1/kb/articles/{article_id}").status_code == 404


def vote_refused(client: TestClient, fx: Any, response: Any) -> None:
    """Bob's vote on an internal article is refused and not counted."""
    article_id = internal_article(client, fx)
    r = client.post(
        f"/api/v1/kb/articles/{article_id}/vote", json={"helpful": False}, headers=bearer(fx.world.bob_token)
    )
    assert r.status_code == 404
    article = client.get(f"/api/v1/kb/articles/{article_id}", headers=bearer(fx.world.agent_token)).json()
    assert (article["helpful"], article["not_helpful"]) == (0, 0)


def deflection_refused(client: TestClient, fx: Any, response: Any) -> None:
    """Bob cannot record a deflection against an internal article."""
    article_id = internal_article(client, fx)
    r = client.post(
        "/api/v1/kb/deflections", json={"query": "edge", "article_id": article_id}, headers=bearer(fx.world.bob_token)
    )
    assert r.status_code == 404


def triage_unchanged(client: TestClient, fx: Any, response: Any) -> None:
    """LiveCo's ticket keeps the model's triage: Bob's correction did not land."""
    t = client.get(f"/api/v1/tickets/{fx.liveco_ticket}/triage", headers=bearer(fx.world.agent_token)).json()
    assert t["corrected"] is False and t["corrected_by"] is None
