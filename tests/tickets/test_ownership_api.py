"""Ownership over the API: assign, take, round robin, followers, reasons, tags, links, merges; each change in
the ticket's log with who made it. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.tenancy import World, bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import DEFAULT_SCOPES, Role


def _file(client: TestClient, w: World, subject: str = "Video freezes", **extra: Any) -> dict[str, Any]:
    r = client.post(
        "/api/v1/tickets", json={"subject": subject, "body": "卡顿 since 03:00", **extra}, headers=bearer(w.alice_token)
    )
    assert r.status_code == 201, r.text
    return r.json()


def _events(client: TestClient, w: World, tid: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/tickets/{tid}/events", headers=bearer(w.agent_token))
    assert r.status_code == 200, r.text
    return r.json()


def _team(desk: Desk, name: str, members: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """A team of new agents (e-mail, time zone): its id, and each agent's id and token by e-mail."""
    with desk.transaction() as s:
        team = identity.create_team(s, name=name)
        found: dict[str, str] = {}
        tokens: dict[str, str] = {}
        for email, zone in members:
            p = identity.create_person(
                s, desk.clock, email=email, name=email.split("@")[0], role=Role.AGENT, timezone=zone
            )
            identity.add_team_member(s, team.id, p.id)
            found[email] = p.id
            tokens[email] = identity.create_token(s, desk.clock, person_id=p.id, name="t", scopes=DEFAULT_SCOPES).plain
        return team.id, found | {f"token:{k}": v for k, v in tokens.items()}


def test_ticket_json_carries_assignee_and_fields(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    t = _file(client, w)
    assert t["assignee"] is None and t["assignee_id"] is None
    assert t["fields"] == {
        "app_id": None,
        "channel_name": None,
        "user_ids": None,
        "sdk_version": None,
        "platform": None,
        "occurred_at": None,
    }
    agent = bearer(w.agent_token)
    taken = client.post(f"/api/v1/tickets/{t['id']}/take", headers=agent)
    assert taken.status_code == 200, taken.text
    assert taken.json()["assignee"] == {"id": w.agent_id, "name": "Agent Wang"}
    assert taken.json()["assignee_id"] == w.agent_id  # the old key stays
    listed = client.get("/api/v1/tickets", headers=agent).json()
    assert listed[0]["assignee"] == {"id": w.agent_id, "name": "Agent Wang"}
    ev = _events(client, w, t["id"])[-1]
    assert ev["kind"] == "assigned" and ev["actor"]["id"] == w.agent_id and ev["data"]["how"] == "take"


def test_assign_to_person_and_team_with_reason_and_customer_may_not(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    team_id, people = _team(desk, "rtc-media", [("li@vendor.test", "Asia/Shanghai")])
    tid = _file(client, w)["id"]
    alice, agent = bearer(w.alice_token), bearer(w.agent_token)
    for body in ({"assignee_id": w.agent_id}, {"team_id": team_id}, {"category": "billing"}, {"unassign": True}):
        r = client.patch(f"/api/v1/tickets/{tid}", json=body, headers=alice)
        assert r.status_code == 403, (body, r.text)
    r = client.patch(
        f"/api/v1/tickets/{tid}",
        json={"team_id": team_id, "assignee_id": people["li@vendor.test"], "priority": "P2", "reason": "SDK crash"},
        headers=agent,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["team_id"] == team_id and body["assignee"]["id"] == people["li@vendor.test"]
    assert body["priority"] == "P2"
    log = {e["kind"]: e for e in _events(client, w, tid)}
    assert log["team_changed"]["data"] == {"frm": None, "to": team_id, "reason": "SDK crash"}
    assert log["priority_changed"]["data"]["reason"] == "SDK crash"
    assert log["priority_changed"]["actor"]["id"] == w.agent_id
    assert log["assigned"]["data"]["to"] == people["li@vendor.test"]
    # Not an agent: refused, and nothing changed (all or nothing).
    r = client.patch(f"/api/v1/tickets/{tid}", json={"assignee_id": w.alice_id, "priority": "P1"}, headers=agent)
    assert r.status_code == 422
    assert client.get(f"/api/v1/tickets/{tid}", headers=agent).json()["priority"] == "P2"


def test_priority_change_with_reason_retargets_the_sla(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    tid = _file(client, w, priority="P3")["id"]
    agent = bearer(w.agent_token)
    before = client.get(f"/api/v1/tickets/{tid}/sla", headers=agent).json()
    r = client.patch(f"/api/v1/tickets/{tid}", json={"priority": "P1", "reason": "production down"}, headers=agent)
    assert r.status_code == 200
    after = client.get(f"/api/v1/tickets/{tid}/sla", headers=agent).json()
    assert (before["priority"], after["priority"]) == ("P3", "P1")
    due = {c["metric"]: c["due_at"] for c in after["clocks"]}
    assert due != {c["metric"]: c["due_at"] for c in before["clocks"]}  # the targets follow the new priority
    r = client.post(
        f"/api/v1/tickets/{tid}/status", json={"status": "pending", "reason": "asked for logs"}, headers=agent
    )
    assert r.status_code == 200
    status = [e for e in _events(client, w, tid) if e["kind"] == "status_changed"][-1]
    assert status["data"] == {"frm": "new", "to": "pending", "reason": "asked for logs"}


def test_round_robin_among_members_in_their_hours(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)
    # Monday 10:00 in Shanghai (02:00 UTC): the Shanghai agents are in hours, the New York one is not.
    clock.set(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    team_id, people = _team(
        desk,
        "rtc-media",
        [("a@vendor.test", "Asia/Shanghai"), ("b@vendor.test", "America/New_York"), ("c@vendor.test", "Asia/Shanghai")],
    )
    agent = bearer(w.agent_token)
    got = []
    for i in range(4):
        tid = _file(client, w, subject=f"freeze {i}")["id"]
        client.patch(f"/api/v1/tickets/{tid}", json={"team_id": team_id}, headers=agent)
        r = client.post(f"/api/v1/tickets/{tid}/auto-assign", headers=agent)
        assert r.status_code == 200, r.text
        got.append(r.json()["assignee"]["id"])
    a, c = people["a@vendor.test"], people["c@vendor.test"]
    assert got == [a, c, a, c]  # b is out of hours: skipped
    # Saturday: nobody in hours, the rotation goes on among everyone (after c comes a).
    clock.set(datetime(2026, 11, 28, 2, 0, tzinfo=UTC))
    tid = _file(client, w, subject="weekend")["id"]
    client.patch(f"/api/v1/tickets/{tid}", json={"team_id": team_id}, headers=agent)
    r = client.post(f"/api/v1/tickets/{tid}/auto-assign", headers=agent)
    assert r.json()["assignee"]["id"] == a
    assert _events(client, w, tid)[-1]["data"]["how"] == "round_robin_out_of_hours"
    no_team = _file(client, w, subject="no team")["id"]
    assert client.post(f"/api/v1/tickets/{no_team}/auto-assign", headers=agent).status_code == 422


def test_followers_and_tags(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    tid = _file(client, w)["id"]
    agent, alice = bearer(w.agent_token), bearer(w.alice_token)
    assert client.post(f"/api/v1/tickets/{tid}/followers", json={}, headers=alice).status_code == 403
    r = client.post(f"/api/v1/tickets/{tid}/followers", json={}, headers=agent)
    assert r.json()["followers"] == [{"id": w.agent_id, "name": "Agent Wang"}]
    assert (
        client.post(f"/api/v1/tickets/{tid}/followers", json={"person_id": w.alice_id}, headers=agent).status_code
        == 422
    )
    assert client.post(f"/api/v1/tickets/{tid}/tags", json={"tags": ["x"]}, headers=alice).status_code == 403
    r = client.post(f"/api/v1/tickets/{tid}/tags", json={"tags": ["Android", "卡顿", "android"]}, headers=agent)
    assert r.status_code == 200 and r.json()["tags"] == ["android", "卡顿"]
    assert client.post(f"/api/v1/tickets/{tid}/tags", json={"tags": ["two words"]}, headers=agent).status_code == 422
    assert client.get(f"/api/v1/tickets/{tid}", headers=alice).json()["tags"] == []  # the agents' own
    other = _file(client, w, subject="other")["id"]
    by_tag = client.get("/api/v1/tickets?tag=android", headers=agent).json()
    assert [t["id"] for t in by_tag] == [tid] and other != tid
    assert client.get("/api/v1/tickets?tag=android", headers=alice).json() == []
    r = client.delete(f"/api/v1/tickets/{tid}/tags/android", headers=agent)
    assert r.json()["tags"] == ["卡顿"]
    r = client.delete(f"/api/v1/tickets/{tid}/followers/{w.agent_id}", headers=agent)
    assert r.json()["followers"] == []
    kinds = [(e["kind"], e["actor"]["id"]) for e in _events(client, w, tid)[1:]]
    assert kinds == [
        ("followed", w.agent_id),
        ("tagged", w.agent_id),
        ("untagged", w.agent_id),
        ("unfollowed", w.agent_id),
    ]


def test_merge_closes_the_duplicate_pointing_at_the_kept_ticket(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    kept = _file(client, w, subject="Audio drops in room 42")["id"]
    dup = _file(client, w, subject="audio drop again")["id"]
    agent, alice = bearer(w.agent_token), bearer(w.alice_token)
    client.post(f"/api/v1/tickets/{dup}/comments", json={"body": "log attached below"}, headers=alice)
    assert client.post(f"/api/v1/tickets/{dup}/merge", json={"into": kept}, headers=alice).status_code == 403
    assert client.post(f"/api/v1/tickets/{dup}/merge", json={"into": dup}, headers=agent).status_code == 422
    r = client.post(f"/api/v1/tickets/{dup}/merge", json={"into": kept, "reason": "same outage"}, headers=agent)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["merged_into"] == kept
    # The customer sees where it went, and still reads what it wrote there.
    seen = client.get(f"/api/v1/tickets/{dup}", headers=alice).json()
    assert seen["merged_into"] == kept and [c["body"] for c in seen["comments"]][-1] == "log attached below"
    assert client.get(f"/api/v1/tickets/{kept}", headers=alice).json()["merged_from"] == [dup]
    # Neither again, nor into the closed duplicate, nor a chain.
    third = _file(client, w, subject="third")["id"]
    assert client.post(f"/api/v1/tickets/{dup}/merge", json={"into": third}, headers=agent).status_code == 422
    assert client.post(f"/api/v1/tickets/{third}/merge", json={"into": dup}, headers=agent).status_code == 422
    log = _events(client, w, dup)
    assert [e["kind"] for e in log[-2:]] == ["merged_into", "status_changed"]
    assert log[-2]["data"] == {"ticket_id": kept, "reason": "same outage"} and log[-2]["actor"]["id"] == w.agent_id
    assert log[-1]["data"]["reason"] == f"merged into #{kept}"
    assert _events(client, w, kept)[-1]["kind"] == "merged_from"
    # Its SLA clocks stopped with the close.
    sla = client.get(f"/api/v1/tickets/{dup}/sla", headers=agent).json()
    assert sla["clocks"] and not [c for c in sla["clocks"] if c["state"] in ("running", "paused")]


def test_links_stay_inside_one_organization(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    a = _file(client, w, subject="a")["id"]
    b = _file(client, w, subject="b")["id"]
    bobs = client.post("/api/v1/tickets", json={"subject": "bob's", "body": "x"}, headers=bearer(w.bob_token)).json()[
        "id"
    ]
    alice, agent, bob = bearer(w.alice_token), bearer(w.agent_token), bearer(w.bob_token)
    r = client.post(f"/api/v1/tickets/{a}/links", json={"ticket_id": b}, headers=alice)  # its own: fine
    assert r.status_code == 200 and r.json()["related"] == [b]
    assert client.get(f"/api/v1/tickets/{b}", headers=alice).json()["related"] == [a]
    assert client.post(f"/api/v1/tickets/{a}/links", json={"ticket_id": bobs}, headers=alice).status_code == 404
    assert client.post(f"/api/v1/tickets/{bobs}/links", json={"ticket_id": a}, headers=bob).status_code == 404
    assert client.post(f"/api/v1/tickets/{a}/links", json={"ticket_id": bobs}, headers=agent).status_code == 422
    assert client.post(f"/api/v1/tickets/{a}/merge", json={"into": bobs}, headers=agent).status_code == 422
    r = client.delete(f"/api/v1/tickets/{b}/links/{a}", headers=alice)
    assert r.status_code == 200 and r.json()["related"] == []
    assert [e["kind"] for e in _events(client, w, a)][-2:] == ["linked", "unlinked"]


def test_events_are_for_staff(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    tid = _file(client, w)["id"]
    assert client.get(f"/api/v1/tickets/{tid}/events", headers=bearer(w.alice_token)).status_code == 403
    assert _events(client, w, tid)[0]["kind"] == "created"
    assert _events(client, w, tid)[0]["actor"]["id"] == w.alice_id


def test_category_change_is_logged(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)
    tid = _file(client, w, category="media_quality")["id"]
    clock.advance(timedelta(minutes=1))
    r = client.patch(
        f"/api/v1/tickets/{tid}",
        json={"category": "billing_account", "reason": "it is a quota"},
        headers=bearer(w.agent_token),
    )
    assert r.status_code == 200 and r.json()["category"] == "billing_account"
    last = _events(client, w, tid)[-1]
    assert last["kind"] == "category_changed"
    assert last["data"] == {"frm": "media_quality", "to": "billing_account", "reason": "it is a quota"}
