"""RTC fields over the API: filed with a ticket, changed later, checked against the customer's own apps, times
stored in UTC, bounded; the list filters by app and SDK version. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.tenancy import World, bearer, build_world
from zhiban.apps import service as apps
from zhiban.desk import Desk

FIELDS = {
    "app_id": "liveco-live",
    "channel_name": "room-8842",
    "user_ids": ["u1001", "u1002"],
    "sdk_version": "4.3.2",
    "platform": "android",
    "occurred_at": "2026-11-20T22:30:00+08:00",
}


def _world(desk: Desk) -> World:
    w = build_world(desk)
    with desk.transaction() as s:
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="liveco-live", organization_id=w.liveco)
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="classmate-edu", organization_id=w.classmate)
    return w


def _file(client: TestClient, w: World, fields: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {"subject": "Freezes in room 8842", "body": "卡顿"}
    if fields is not None:
        body["fields"] = fields
    return client.post("/api/v1/tickets", json=body, headers=bearer(w.alice_token))


def test_fields_filed_with_the_ticket_are_answered_in_utc(client: TestClient, desk: Desk) -> None:
    w = _world(desk)
    r = _file(client, w, FIELDS)
    assert r.status_code == 201, r.text
    expected = FIELDS | {"occurred_at": "2026-11-20T14:30:00Z"}
    assert r.json()["fields"] == expected
    tid = r.json()["id"]
    assert client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.agent_token)).json()["fields"] == expected
    assert client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.alice_token)).json()["fields"] == expected


def test_fields_are_checked(client: TestClient, desk: Desk) -> None:
    w = _world(desk)
    bad: list[dict[str, Any]] = [
        {"app_id": "classmate-edu"},  # another organization's app
        {"app_id": "no-such-app"},
        {"occurred_at": "2026-11-20T14:30:00"},  # no offset: which zone?
        {"occurred_at": "2026-12-20T14:30:00Z"},  # in the future (the clock is 2026-11-20 19:00 UTC)
        {"occurred_at": "2024-01-01T00:00:00Z"},  # older than telemetry is ever kept
        {"user_ids": [f"u{i}" for i in range(21)]},
        {"channel_name": "x" * 129},
        {"sdk_version": "4.3.2; drop table"},
        {"platform": "\x00"},
    ]
    for fields in bad:
        r = _file(client, w, fields)
        assert r.status_code == 422, (fields, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # The other org's app reads exactly like an unknown one: no existence leak.
    one = _file(client, w, {"app_id": "classmate-edu"}).json()["detail"]
    other = _file(client, w, {"app_id": "no-such-app"}).json()["detail"]
    assert one.replace("classmate-edu", "X") == other.replace("no-such-app", "X")
    assert client.get("/api/v1/tickets", headers=bearer(w.agent_token)).json() == []  # nothing was filed


def test_fields_change_later_and_the_log_says_who(client: TestClient, desk: Desk) -> None:
    w = _world(desk)
    tid = _file(client, w, {"channel_name": "room-1"}).json()["id"]
    alice, agent = bearer(w.alice_token), bearer(w.agent_token)
    r = client.patch(
        f"/api/v1/tickets/{tid}", json={"fields": {"app_id": "liveco-live", "sdk_version": "4.3.3"}}, headers=alice
    )
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["channel_name"] == "room-1"  # untouched fields stay
    assert (r.json()["fields"]["app_id"], r.json()["fields"]["sdk_version"]) == ("liveco-live", "4.3.3")
    r = client.patch(f"/api/v1/tickets/{tid}", json={"fields": {"channel_name": None}}, headers=agent)
    assert r.json()["fields"]["channel_name"] is None
    assert (
        client.patch(f"/api/v1/tickets/{tid}", json={"fields": {"app_id": "classmate-edu"}}, headers=alice).status_code
        == 422
    )
    log = [
        e for e in client.get(f"/api/v1/tickets/{tid}/events", headers=agent).json() if e["kind"] == "fields_changed"
    ]
    assert [(e["actor"]["id"], e["data"]["changed"]) for e in log] == [
        (w.alice_id, ["app_id", "sdk_version"]),
        (w.agent_id, ["channel_name"]),
    ]


def test_list_filters_by_app_and_sdk_version(client: TestClient, desk: Desk) -> None:
    w = _world(desk)
    a = _file(client, w, {"app_id": "liveco-live", "sdk_version": "4.3.2"}).json()["id"]
    b = _file(client, w, {"app_id": "liveco-live", "sdk_version": "4.2.0"}).json()["id"]
    c = _file(client, w, None).json()["id"]
    agent = bearer(w.agent_token)

    def ids(query: str) -> list[int]:
        return [t["id"] for t in client.get(f"/api/v1/tickets?{query}", headers=agent).json()]

    assert ids("app_id=liveco-live") == [b, a]
    assert ids("sdk_version=4.3.2") == [a]
    assert ids("app_id=liveco-live&sdk_version=4.2.0") == [b]
    assert c not in ids("app_id=liveco-live")
    assert client.get("/api/v1/tickets?sdk_version=" + "9" * 40, headers=agent).status_code == 422
