"""Tickets over the API: the thin slice, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk


def test_customer_files_agent_replies_customer_sees_public_only(
    client: TestClient, desk: Desk, clock: FrozenClock
) -> None:
    w = build_world(desk)
    r = client.post(
        "/api/v1/tickets",
        json={"subject": "Video freezes in cn-east", "body": "Viewers see 卡顿 since 03:00", "priority": "P1"},
        headers=bearer(w.alice_token),
    )
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert ticket["status"] == "new" and ticket["organization_id"] == w.liveco and ticket["channel"] == "api"
    assert r.headers["location"] == f"/api/v1/tickets/{ticket['id']}"

    clock.advance(timedelta(minutes=3))
    tid = ticket["id"]
    note = client.post(
        f"/api/v1/tickets/{tid}/comments",
        json={"body": "edge sh-edge-07 suspect", "public": False},
        headers=bearer(w.agent_token),
    )
    assert note.status_code == 201
    # An internal note does not answer the customer: the ticket stays new.
    assert client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.agent_token)).json()["status"] == "new"
    reply = client.post(
        f"/api/v1/tickets/{tid}/comments", json={"body": "We are on it."}, headers=bearer(w.agent_token)
    )
    assert reply.status_code == 201

    agent_view = client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.agent_token)).json()
    assert agent_view["status"] == "open"
    assert [c["public"] for c in agent_view["comments"]] == [True, False, True]

    customer_view = client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.alice_token)).json()
    bodies = [c["body"] for c in customer_view["comments"]]
    assert "edge sh-edge-07 suspect" not in bodies and bodies[-1] == "We are on it."


def test_status_flow_and_customer_reply_reopens(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    tid = client.post(
        "/api/v1/tickets",
        json={"subject": "Token error 109", "body": "renewToken fails"},
        headers=bearer(w.alice_token),
    ).json()["id"]
    agent, alice = bearer(w.agent_token), bearer(w.alice_token)
    assert (
        client.post(f"/api/v1/tickets/{tid}/status", json={"status": "pending"}, headers=agent).json()["status"]
        == "pending"
    )
    # The customer answering puts the ticket back in the agent's court.
    client.post(f"/api/v1/tickets/{tid}/comments", json={"body": "here is the log"}, headers=alice)
    assert client.get(f"/api/v1/tickets/{tid}", headers=agent).json()["status"] == "open"
    assert client.post(f"/api/v1/tickets/{tid}/status", json={"status": "solved"}, headers=agent).status_code == 200
    client.post(f"/api/v1/tickets/{tid}/comments", json={"body": "it came back"}, headers=alice)
    assert client.get(f"/api/v1/tickets/{tid}", headers=agent).json()["status"] == "open"
    client.post(f"/api/v1/tickets/{tid}/status", json={"status": "solved"}, headers=agent)
    assert client.post(f"/api/v1/tickets/{tid}/status", json={"status": "closed"}, headers=agent).status_code == 200
    closed = client.post(f"/api/v1/tickets/{tid}/comments", json={"body": "again"}, headers=alice)
    assert closed.status_code == 422 and closed.json()["type"].endswith("/invalid-input")
    # A customer cannot put a ticket on hold: that is the agent's call.
    tid2 = client.post("/api/v1/tickets", json={"subject": "x", "body": "y"}, headers=alice).json()["id"]
    r = client.post(f"/api/v1/tickets/{tid2}/status", json={"status": "on_hold"}, headers=alice)
    assert r.status_code == 403 and r.json()["type"].endswith("/forbidden")


def test_customer_cannot_write_internal_notes_or_file_for_others(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    alice = bearer(w.alice_token)
    tid = client.post("/api/v1/tickets", json={"subject": "s", "body": "b"}, headers=alice).json()["id"]
    r = client.post(f"/api/v1/tickets/{tid}/comments", json={"body": "secret", "public": False}, headers=alice)
    assert r.status_code == 403
    r = client.post("/api/v1/tickets", json={"subject": "s", "body": "b", "requester_id": w.bob_id}, headers=alice)
    assert r.status_code == 403


def test_agent_files_on_behalf_and_queue_orders_by_priority(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)
    agent = bearer(w.agent_token)
    missing = client.post("/api/v1/tickets", json={"subject": "s", "body": "b"}, headers=agent)
    assert missing.status_code == 422
    ids = []
    for prio in ("P3", "P1", "P4", "P2"):
        clock.advance(timedelta(seconds=1))
        r = client.post(
            "/api/v1/tickets",
            json={"subject": prio, "body": "b", "priority": prio, "requester_id": w.bob_id},
            headers=agent,
        )
        assert r.status_code == 201 and r.json()["organization_id"] == w.classmate
        ids.append(r.json()["id"])
    listed = client.get("/api/v1/tickets", headers=agent).json()
    assert [t["subject"] for t in listed] == ["P2", "P4", "P1", "P3"]  # newest first
    patched = client.patch(
        f"/api/v1/tickets/{ids[0]}", json={"priority": "P1", "assignee_id": w.agent_id}, headers=agent
    )
    assert (
        patched.status_code == 200
        and patched.json()["priority"] == "P1"
        and patched.json()["assignee_id"] == w.agent_id
    )
    r = client.patch(f"/api/v1/tickets/{ids[0]}", json={"assignee_id": w.bob_id}, headers=agent)
    assert r.status_code == 422  # customers are not assignees


def test_bad_input_is_problem_json_and_nothing_is_stored(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    alice = bearer(w.alice_token)
    cases = [
        {"subject": "", "body": "b"},
        {"subject": "s" * 201, "body": "b"},
        {"subject": "s", "body": "b", "priority": "P9"},
        {"subject": "nul\x00", "body": "b"},
        {"body": "b"},
    ]
    for payload in cases:
        r = client.post("/api/v1/tickets", json=payload, headers=alice)
        assert r.status_code == 422, payload
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == "https://zhiban.dev/problems/invalid-input"
    r = client.post("/api/v1/tickets", content=b"{not json", headers={**alice, "content-type": "application/json"})
    assert r.status_code == 422
    assert client.get("/api/v1/tickets", headers=alice).json() == []
    assert client.get("/api/v1/tickets/999999999999", headers=alice).status_code == 422
    assert client.get("/api/v1/tickets/424242", headers=alice).json()["type"].endswith("/not-found")


def test_unauthenticated_and_revoked_tokens(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    r = client.get("/api/v1/tickets")
    assert r.status_code == 401 and r.json()["type"].endswith("/unauthorized")
    assert client.get("/api/v1/tickets", headers=bearer("zb_deadbeef_nope")).status_code == 401
    assert client.get("/api/v1/tickets", headers=bearer("garbage")).status_code == 401
    new = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["tickets:read"]}, headers=bearer(w.alice_token))
    assert new.status_code == 201
    token = new.json()["token"]
    assert client.get("/api/v1/tickets", headers=bearer(token)).status_code == 200
    # A read-only token cannot write.
    assert client.post("/api/v1/tickets", json={"subject": "s", "body": "b"}, headers=bearer(token)).status_code == 403
    assert client.delete(f"/api/v1/tokens/{new.json()['id']}", headers=bearer(w.alice_token)).status_code == 204
    assert client.get("/api/v1/tickets", headers=bearer(token)).status_code == 401
