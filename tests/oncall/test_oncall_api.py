"""The on-call API and iCal feeds: staff build and read schedules, customers reach none of it."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar
from fastapi.testclient import TestClient

from tests.oncall.oncall_kit import sh
from tests.tenancy import World, bearer, build_world
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.oncall import service


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _network(client: TestClient, w: World) -> str:
    """Network primary: the agent and the admin in daily turns from Monday 16 November 09:00 Shanghai."""
    made = client.post(
        "/api/v1/schedules",
        json={"name": "Network primary", "zone": "Asia/Shanghai", "owner_id": w.admin_id},
        headers=bearer(w.admin_token),
    )
    assert made.status_code == 201, made.text
    sid = str(made.json()["id"])
    assert made.headers["location"] == f"/api/v1/schedules/{sid}"
    layer = client.post(
        f"/api/v1/schedules/{sid}/layers",
        json={
            "name": "daily",
            "participants": [w.agent_id, w.admin_id],
            "rotation_start": _iso(sh(2026, 11, 16, 9)),
            "turn_length": 1,
            "turn_unit": "day",
        },
        headers=bearer(w.admin_token),
    )
    assert layer.status_code == 201, layer.text
    return sid


def test_build_a_schedule_and_read_now_next_and_shifts(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    sid = _network(client, w)
    listed = client.get("/api/v1/schedules", headers=bearer(w.agent_token)).json()
    # The test clock is Saturday 21 November 03:00 Shanghai: inside Friday's turn, the agent's (turn 4).
    assert [(s["name"], s["on_call_now"]) for s in listed] == [("Network primary", [w.agent_id])]

    detail = client.get(f"/api/v1/schedules/{sid}", headers=bearer(w.agent_token)).json()
    assert detail["current"]["person_id"] == w.agent_id
    assert detail["current"]["person_name"] == "Agent Wang"
    assert datetime.fromisoformat(detail["current"]["end"]) == sh(2026, 11, 21, 9)
    assert [n["person_id"] for n in detail["next"][:2]] == [w.admin_id, w.agent_id]
    assert detail["layers"][0]["participants"] == [w.agent_id, w.admin_id]
    assert detail["ical_url"].startswith("/oncall/ical/") and detail["ical_url"].endswith(".ics")

    shifts = client.get(
        f"/api/v1/schedules/{sid}/shifts",
        params={"start": _iso(sh(2026, 11, 16)), "end": _iso(sh(2026, 11, 18))},
        headers=bearer(w.agent_token),
    ).json()
    assert [(s["person_id"], datetime.fromisoformat(s["start"])) for s in shifts] == [
        (w.agent_id, sh(2026, 11, 16, 9)),
        (w.admin_id, sh(2026, 11, 17, 9)),
    ]
    assert datetime.fromisoformat(shifts[-1]["end"]) == sh(2026, 11, 18)  # clipped to the window
    naive = client.get(f"/api/v1/schedules/{sid}/shifts?start=2026-11-16T00:00", headers=bearer(w.agent_token))
    assert naive.status_code == 422 and "timezone-aware" in naive.json()["detail"]


def test_overrides_through_the_api(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    sid = _network(client, w)
    body = {"person_id": w.admin_id, "start": _iso(sh(2026, 11, 21, 2)), "end": _iso(sh(2026, 11, 21, 4))}
    made = client.post(f"/api/v1/schedules/{sid}/overrides", json=body, headers=bearer(w.agent_token))
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == w.agent_id
    with desk.transaction() as s:
        assert service.on_call_now(s, sid, sh(2026, 11, 21, 3)) == [w.admin_id]
    detail = client.get(f"/api/v1/schedules/{sid}", headers=bearer(w.agent_token)).json()
    assert detail["current"]["is_override"] and detail["current"]["person_id"] == w.admin_id
    assert [o["id"] for o in detail["overrides"]] == [made.json()["id"]]

    bad = client.post(
        f"/api/v1/schedules/{sid}/overrides",
        json={**body, "end": _iso(sh(2026, 11, 21, 1))},
        headers=bearer(w.agent_token),
    )
    assert bad.status_code == 422
    gone = client.delete(f"/api/v1/schedules/{sid}/overrides/{made.json()['id']}", headers=bearer(w.agent_token))
    assert gone.status_code == 204
    with desk.transaction() as s:
        assert service.on_call_now(s, sid, sh(2026, 11, 21, 3)) == [w.agent_id]
    again = client.delete(f"/api/v1/schedules/{sid}/overrides/{made.json()['id']}", headers=bearer(w.agent_token))
    assert again.status_code == 404


def test_only_admins_shape_rotations(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    sid = _network(client, w)
    r = client.post("/api/v1/schedules", json={"name": "Mine", "zone": "UTC"}, headers=bearer(w.agent_token))
    assert r.status_code == 403
    r = client.patch(f"/api/v1/schedules/{sid}", json={"name": "Renamed"}, headers=bearer(w.agent_token))
    assert r.status_code == 403
    r = client.post("/api/v1/schedules", json={"name": "Network primary", "zone": "UTC"}, headers=bearer(w.admin_token))
    assert r.status_code == 409
    r = client.post("/api/v1/schedules", json={"name": "Mars", "zone": "Mars/Olympus"}, headers=bearer(w.admin_token))
    assert r.status_code == 422 and "time zone" in r.json()["detail"]
    r = client.patch(f"/api/v1/schedules/{sid}", json={"zone": "Europe/Berlin"}, headers=bearer(w.admin_token))
    assert r.status_code == 200 and r.json()["zone"] == "Europe/Berlin" and r.json()["version"] == 3


def test_customers_reach_no_schedule_route(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    sid = _network(client, w)
    layer_id = client.get(f"/api/v1/schedules/{sid}", headers=bearer(w.admin_token)).json()["layers"][0]["id"]
    override = client.post(
        f"/api/v1/schedules/{sid}/overrides",
        json={"person_id": w.agent_id, "start": _iso(sh(2026, 11, 22)), "end": _iso(sh(2026, 11, 23))},
        headers=bearer(w.admin_token),
    ).json()["id"]
    layer = {"name": "x", "participants": [w.alice_id], "rotation_start": _iso(sh(2026, 11, 16))}
    attempts = [
        ("GET", "/api/v1/schedules", None),
        ("POST", "/api/v1/schedules", {"name": "LiveCo", "zone": "UTC"}),
        ("GET", f"/api/v1/schedules/{sid}", None),
        ("PATCH", f"/api/v1/schedules/{sid}", {"name": "Owned"}),
        ("POST", f"/api/v1/schedules/{sid}/layers", layer),
        ("PUT", f"/api/v1/schedules/{sid}/layers/{layer_id}", layer),
        ("DELETE", f"/api/v1/schedules/{sid}/layers/{layer_id}", None),
        (
            "POST",
            f"/api/v1/schedules/{sid}/overrides",
            {"person_id": w.alice_id, "start": _iso(sh(2026, 11, 21)), "end": _iso(sh(2026, 11, 22))},
        ),
        ("DELETE", f"/api/v1/schedules/{sid}/overrides/{override}", None),
        ("GET", f"/api/v1/schedules/{sid}/shifts", None),
        ("POST", f"/api/v1/schedules/{sid}/ical-token", None),
        ("GET", "/api/v1/oncall/me", None),
        ("POST", "/api/v1/oncall/me/ical-token", None),
    ]
    before = client.get(f"/api/v1/schedules/{sid}", headers=bearer(w.admin_token)).json()
    for method, path, body in attempts:
        for token in (w.alice_token, w.bob_token):
            r = client.request(method, path, json=body, headers=bearer(token))
            assert r.status_code == 403, (method, path, r.status_code)
            assert w.agent_id not in r.text and "Network primary" not in r.text
    assert client.get(f"/api/v1/schedules/{sid}", headers=bearer(w.admin_token)).json() == before
    feed = client.get(before["ical_url"])
    assert feed.status_code == 200  # the token itself was not rotated


def test_ical_feeds_need_the_right_token(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    sid = _network(client, w)
    client.post(
        f"/api/v1/schedules/{sid}/overrides",
        json={"person_id": w.admin_id, "start": _iso(sh(2026, 11, 21, 2)), "end": _iso(sh(2026, 11, 21, 4))},
        headers=bearer(w.agent_token),
    )
    url = client.get(f"/api/v1/schedules/{sid}", headers=bearer(w.agent_token)).json()["ical_url"]
    feed = client.get(url)  # no login: the secret is the URL
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(feed.content)
    events = sorted(calendar.walk("VEVENT"), key=lambda e: e.decoded("dtstart"))
    spans = [(e.decoded("dtstart"), e.decoded("dtend"), str(e["summary"])) for e in events]
    assert all(start.tzinfo is not None and start.utcoffset().total_seconds() == 0 for start, _, _ in spans)
    # Saturday 21 November: the agent until 02:00, the admin's override to 04:00, the agent again until 09:00.
    saturday = [(a, b, s) for a, b, s in spans if sh(2026, 11, 20, 9) <= a < sh(2026, 11, 21, 9)]
    assert saturday == [
        (
            sh(2026, 11, 20, 9).astimezone(UTC),
            sh(2026, 11, 21, 2).astimezone(UTC),
            "On call: Agent Wang (Network primary)",
        ),
        (sh(2026, 11, 21, 2).astimezone(UTC), sh(2026, 11, 21, 4).astimezone(UTC), "On call: Admin (Network primary)"),
        (
            sh(2026, 11, 21, 4).astimezone(UTC),
            sh(2026, 11, 21, 9).astimezone(UTC),
            "On call: Agent Wang (Network primary)",
        ),
    ]

    assert client.get("/oncall/ical/not-the-token.ics").status_code == 404
    rotated = client.post(f"/api/v1/schedules/{sid}/ical-token", headers=bearer(w.admin_token))
    assert rotated.status_code == 200 and rotated.json()["ical_url"] != url
    assert client.get(url).status_code == 404  # the old address stops working
    assert client.get(rotated.json()["ical_url"]).status_code == 200

    # My own feed: only my shifts, across schedules.
    mine = client.get("/api/v1/oncall/me", headers=bearer(w.admin_token)).json()
    personal = icalendar.Calendar.from_ical(client.get(mine["ical_url"]).content)
    summaries = {str(e["summary"]) for e in personal.walk("VEVENT")}
    assert summaries == {"On call: Admin (Network primary)"}
    new = client.post("/api/v1/oncall/me/ical-token", headers=bearer(w.admin_token)).json()["ical_url"]
    assert client.get(mine["ical_url"]).status_code == 404 and client.get(new).status_code == 200


def test_my_on_call_is_in_my_zone(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    _network(client, w)
    with desk.transaction() as s:
        sam = identity.create_person(
            s, desk.clock, email="sam@vendor.test", name="Sam", role=Role.AGENT, timezone="America/Los_Angeles"
        )
        token = identity.create_token(s, desk.clock, person_id=sam.id, name="t").plain
    sid = client.post(
        "/api/v1/schedules", json={"name": "Video", "zone": "America/Los_Angeles"}, headers=bearer(w.admin_token)
    ).json()["id"]
    layer = {
        "name": "weekly",
        "participants": [sam.id],
        "rotation_start": "2026-11-16T09:00:00-08:00",
        "turn_length": 7,
    }
    assert client.post(f"/api/v1/schedules/{sid}/layers", json=layer, headers=bearer(w.admin_token)).status_code == 201
    mine = client.get(
        "/api/v1/oncall/me",
        params={"start": "2026-11-16T00:00:00Z", "end": "2026-11-23T00:00:00Z"},
        headers=bearer(token),
    ).json()
    assert mine["zone"] == "America/Los_Angeles"
    assert [(s["schedule_name"], s["start"], s["end"]) for s in mine["shifts"]] == [
        ("Video", "2026-11-16T09:00:00-08:00", "2026-11-22T16:00:00-08:00")  # clipped to the window
    ]
    # The agent of the tenancy world lives in UTC: Monday and Wednesday 09:00 Shanghai are 01:00 there.
    agent = client.get(
        "/api/v1/oncall/me",
        params={"start": _iso(sh(2026, 11, 16)), "end": _iso(sh(2026, 11, 20))},
        headers=bearer(w.agent_token),
    ).json()
    assert [datetime.fromisoformat(s["start"]) for s in agent["shifts"]] == [
        datetime(2026, 11, 16, 1, tzinfo=UTC),
        datetime(2026, 11, 18, 1, tzinfo=UTC),
    ]
