"""SLA and calendar API and pages: a ticket's clocks, what-if, admin edits, the queue's countdowns."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from tests.tenancy import PASSWORD, bearer, build_world, web_login
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk

SH = ZoneInfo("Asia/Shanghai")

ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//holidays//EN\r
BEGIN:VEVENT\r
UID:typhoon-1@test\r
DTSTAMP:20261001T000000Z\r
DTSTART;VALUE=DATE:20261015\r
DTEND;VALUE=DATE:20261017\r
SUMMARY:Typhoon closure\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_ticket_sla_for_staff_and_own_customer(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)
    # ClassMate: Standard plan, US calendar, New York. Filed Friday 9 Oct 2026 17:50 local.
    clock.set(datetime(2026, 10, 9, 17, 50, tzinfo=ZoneInfo("America/New_York")))
    tid = client.post(
        "/api/v1/tickets", json={"subject": "black screen", "body": "b", "priority": "P2"}, headers=bearer(w.bob_token)
    ).json()["id"]
    mine = client.get(f"/api/v1/tickets/{tid}/sla", headers=bearer(w.bob_token))
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["plan"] == "standard" and body["calendar"] == "US America/New_York"
    assert body["targets"] == [{"metric": "first_response", "minutes": 240, "calendar": "business"}]
    [first] = body["clocks"]
    # 10 min on Friday; Monday 12 October is Columbus Day in the US calendar, so 3 h 50 on Tuesday.
    assert datetime.fromisoformat(first["due_at"]) == datetime(
        2026, 10, 13, 12, 50, tzinfo=ZoneInfo("America/New_York")
    )
    assert [h["reason"] for h in body["history"]] == ["started"]
    assert client.get(f"/api/v1/tickets/{tid}/sla", headers=bearer(w.alice_token)).status_code == 404
    assert client.get(f"/api/v1/tickets/{tid}/sla", headers=bearer(w.agent_token)).status_code == 200


def test_preview_matches_the_story(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    r = client.post(
        "/api/v1/sla/preview",
        json={
            "plan": "Standard",
            "priority": "P2",
            "country": "CN",
            "tz": "Asia/Shanghai",
            "at": "2026-10-09T17:50:00+08:00",
        },
        headers=bearer(w.agent_token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["first_response_due"] == "2026-10-10T12:50:00+08:00" and r.json()["resolution_due"] is None
    bad = client.post(
        "/api/v1/sla/preview",
        json={
            "plan": "gold",
            "priority": "P2",
            "country": "CN",
            "tz": "Asia/Shanghai",
            "at": "2026-10-09T17:50:00+08:00",
        },
        headers=bearer(w.agent_token),
    )
    assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-input")


def test_admin_edits_plans_rules_and_calendars(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    admin, agent = bearer(w.admin_token), bearer(w.agent_token)
    plans = client.get("/api/v1/sla/plans", headers=agent).json()
    assert [p["key"] for p in plans] == ["basic", "standard", "premium", "enterprise"]
    change = {"targets": {"P2": [{"metric": "first_response", "minutes": 90, "calendar": "24x7"}]}}
    assert client.put("/api/v1/sla/plans/standard", json=change, headers=agent).status_code == 403
    r = client.put("/api/v1/sla/plans/standard", json=change, headers=admin)
    assert r.status_code == 200 and r.json()["targets"]["P2"][0]["minutes"] == 90
    rule = client.post(
        "/api/v1/sla/policy/rules",
        json={"name": "network P1", "category": "network", "targets": [{"metric": "first_response", "minutes": 10}]},
        headers=admin,
    )
    assert rule.status_code == 201
    second = client.post(
        "/api/v1/sla/policy/rules",
        json={"name": "first", "position": 0, "targets": [{"metric": "resolution", "minutes": 600}]},
        headers=admin,
    ).json()
    policy = client.get("/api/v1/sla/policy", headers=agent).json()
    assert [r["name"] for r in policy["rules"]] == ["first", "network P1"] and policy["version"] == 4
    ids = [second["id"], rule.json()["id"]][::-1]
    assert [
        r["name"] for r in client.put("/api/v1/sla/policy/order", json={"rule_ids": ids}, headers=admin).json()
    ] == [
        "network P1",
        "first",
    ]
    assert client.delete(f"/api/v1/sla/policy/rules/{second['id']}", headers=admin).status_code == 204
    bad = client.post(
        "/api/v1/sla/policy/rules",
        json={
            "name": "x",
            "targets": [{"metric": "first_response", "minutes": 1}, {"metric": "first_response", "minutes": 2}],
        },
        headers=admin,
    )
    assert bad.status_code == 422

    cal = client.post(
        "/api/v1/calendars",
        json={"name": "Shanghai support", "tz": "Asia/Shanghai", "country": "CN", "weekly": {"mon": "09:00-21:00"}},
        headers=admin,
    )
    assert cal.status_code == 201, cal.text
    cid = cal.json()["id"]
    assert cal.json()["weekly"]["0"] == "09:00-21:00" and cal.json()["weekly"]["1"] == ""
    assert client.post("/api/v1/calendars", json={"name": "x", "tz": "Mars/Base"}, headers=admin).status_code == 422
    imported = client.post(f"/api/v1/calendars/{cid}/ical", content=ICS, headers=admin)
    assert imported.status_code == 200, imported.text
    assert imported.json()["new_holidays"] == 2
    assert imported.json()["calendar"]["holidays_added"] == ["2026-10-15", "2026-10-16"]
    assert imported.json()["calendar"]["version"] == 2
    patched = client.patch(f"/api/v1/calendars/{cid}", json={"weekly": {"sat": "10:00-16:00"}}, headers=admin)
    assert patched.json()["weekly"]["5"] == "10:00-16:00" and patched.json()["version"] == 3
    r = client.put(f"/api/v1/sla/organizations/{w.liveco}/calendar", json={"calendar_id": cid}, headers=admin)
    assert r.status_code == 200
    assert client.delete(f"/api/v1/calendars/{cid}", headers=admin).status_code == 409  # LiveCo counts on it


def _login(client: TestClient, email: str) -> str:
    r = web_login(client, email)
    assert r.status_code == 303
    return client.cookies.get("zhiban_session") or ""


def test_queue_countdown_in_business_time_and_both_languages(
    client: TestClient, desk: Desk, clock: FrozenClock
) -> None:
    build_world(desk, passwords=True)
    with desk.transaction() as s:
        from zhiban.identity import service as identity
        from zhiban.identity.model import Role

        org = identity.create_organization(s, clock, name="Classroom", slug="classroom", plan="standard")
        identity.create_person(
            s, clock, email="t@classroom.test", name="T", role=Role.CUSTOMER, organization_id=org.id, password=PASSWORD
        )
    # Filed Thursday 15 October 2026 09:00 Shanghai: Standard P2 is due after 4 business hours, at 13:00.
    clock.set(datetime(2026, 10, 15, 9, 0, tzinfo=SH))
    _login(client, "t@classroom.test")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/portal/new").text)
    assert token
    client.post("/portal/new", data={"subject": "黑屏", "body": "b", "priority": "P2", "csrf_token": token.group(1)})
    client.cookies.clear()
    clock.set(datetime(2026, 10, 15, 11, 0, tzinfo=SH))  # 2 business hours left, due 13:00
    _login(client, "agent@vendor.test")
    # The agent reads times in its own zone (UTC): 13:00 Shanghai is 05:00.
    en = client.get("/agent/queue?lang=en").text
    assert "2 business hours left, due Thu 05:00" in en
    zh = client.get("/agent/queue?lang=zh").text
    assert "剩余 2 个工作小时，截止 周四 05:00" in zh
    ticket = client.get("/tickets/1/sla?lang=en").text
    assert "First response" in ticket and "Standard" in ticket
