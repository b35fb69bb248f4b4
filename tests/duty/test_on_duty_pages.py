"""What the customer and the agent see of a ticket's page to the engineer on duty, in the web UI; the customer's
urgent action from the portal. The test clock starts on Saturday 03:00 Asia/Shanghai (19:00 UTC Friday)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from importlib import resources

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.incidents.incident_kit import build as build_paging
from tests.tenancy import PASSWORD, World, bearer, build_world, web_login
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.incidents import service as incidents
from zhiban.notify.store import NotificationRow

SERVICE = "media network cn-east"
URGENT_BUTTON = "Urgent: wake the engineer on duty"


def _setup(client: TestClient, desk: Desk) -> tuple[World, str]:
    """LiveCo on a standby plan paging P1/P2 through SERVICE, with one urgent request a day on P3 tickets."""
    world = build_world(desk, passwords=True)
    paging = build_paging(desk)
    support = {"mode": "standby", "paging_service": SERVICE, "urgent_priorities": ["P3"], "urgent_per_day": 1}
    ok = client.put("/api/v1/sla/plans/enterprise", json={"support": support}, headers=bearer(world.admin_token))
    assert ok.status_code == 200, ok.text
    return world, paging.primary


def _file(client: TestClient, token: str, priority: str) -> dict:
    made = client.post(
        "/api/v1/tickets", json={"subject": "直播卡顿 stream stutters", "body": "room-8812", "priority": priority},
        headers=bearer(token),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()


def _sign_in(client: TestClient, email: str) -> None:
    client.cookies.clear()
    assert web_login(client, email).status_code == 303


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def _pages(desk: Desk) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).where(NotificationRow.subject_kind == "incident")) or 0


def test_the_customer_sees_the_page_and_who_acknowledged_it(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    world, _ = _setup(client, desk)
    with desk.transaction() as s:  # a second LiveCo user, reading in Shanghai time
        identity.create_person(
            s, desk.clock, email="chen@liveco.test", name="Chen", role=Role.CUSTOMER,
            organization_id=world.liveco, password=PASSWORD, timezone="Asia/Shanghai",
        )  # fmt: skip
    p1 = _file(client, world.alice_token, "P1")
    quiet = _file(client, world.alice_token, "P3")

    _sign_in(client, "alice@liveco.test")
    page = client.get(f"/tickets/{p1['id']}").text
    assert "An engineer on duty was paged at 2026-11-20 19:00" in page  # Alice reads UTC
    assert "Acknowledged by" not in page and "Not acknowledged yet" in page
    assert "/incidents/" not in page  # the incident is internal: no link for the customer
    assert 'hx-get="/tickets/{}/urgent"'.format(p1["id"]) not in page  # already paging: nothing to ask
    nothing = client.get(f"/tickets/{quiet['id']}").text
    assert 'id="on-duty"' not in nothing and "engineer on duty was paged" not in nothing

    clock.advance(timedelta(minutes=4))
    with desk.transaction() as s:
        incidents.acknowledge_as(s, desk.clock, p1["on_duty"]["incident_id"], "primary@vendor.test", via="test")
    page = client.get(f"/tickets/{p1['id']}").text
    assert "Acknowledged by Primary at 2026-11-20 19:04" in page and "Not acknowledged yet" not in page

    _sign_in(client, "chen@liveco.test")
    shanghai = client.get(f"/tickets/{p1['id']}?lang=zh").text
    assert "已于 2026-11-21 03:00 呼叫值班工程师" in shanghai
    assert "Primary 已于 2026-11-21 03:04 确认" in shanghai


def test_the_agent_sees_the_page_and_reaches_its_incident(client: TestClient, desk: Desk) -> None:
    world, _ = _setup(client, desk)
    p1 = _file(client, world.alice_token, "P1")
    incident_id = p1["on_duty"]["incident_id"]
    _sign_in(client, "agent@vendor.test")
    page = client.get(f"/tickets/{p1['id']}").text
    assert "Engineer on duty · paged for the ticket&#39;s priority" in page
    assert "An engineer on duty was paged at" in page and "Requested 2026-11-20 19:00" in page
    assert f'href="/incidents/{incident_id}"' in page
    assert "/urgent" not in page  # agents raise the priority; the urgent action is the customer's
    incident = client.get(f"/incidents/{incident_id}")
    assert incident.status_code == 200
    assert f'Pages for ticket <a href="/tickets/{p1["id"]}">#{p1["id"]}</a>' in incident.text
    # Solved: the page stopped, and the agent sees when.
    token = _csrf(page)
    solved = client.post(f"/tickets/{p1['id']}/status", data={"status": "solved", "csrf_token": token})
    assert solved.status_code == 200 and "paging stopped 2026-11-20 19:00" in solved.text


def test_the_customer_wakes_the_engineer_from_the_portal(client: TestClient, desk: Desk) -> None:
    world, primary = _setup(client, desk)
    p3 = _file(client, world.alice_token, "P3")
    _sign_in(client, "alice@liveco.test")
    page = client.get(f"/tickets/{p3['id']}").text
    assert f'hx-get="/tickets/{p3["id"]}/urgent"' in page  # the action is loaded from duty, which knows the plan
    offer = client.get(f"/tickets/{p3['id']}/urgent")
    assert offer.status_code == 200 and URGENT_BUTTON in offer.text
    assert f'action="/tickets/{p3["id"]}/urgent"' in offer.text and "1 of 1 urgent requests left today" in offer.text

    # Without the session's CSRF token nothing is paged.
    forged = client.post(f"/tickets/{p3['id']}/urgent", data={"note": "all rooms down"}, follow_redirects=False)
    assert forged.status_code == 403 and _pages(desk) == 0

    token = _csrf(offer.text)
    sent = client.post(
        f"/tickets/{p3['id']}/urgent", data={"note": "all rooms down", "csrf_token": token}, follow_redirects=False
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/tickets/{p3['id']}#on-duty"
    assert _pages(desk) == 1
    page = client.get(f"/tickets/{p3['id']}").text
    assert "An engineer on duty was paged at 2026-11-20 19:00" in page
    assert "/urgent" not in page  # paging now: no second button
    seen = client.get(f"/api/v1/tickets/{p3['id']}", headers=bearer(world.alice_token)).json()["on_duty"]
    assert seen["paged_at"] is not None
    with desk.sessions() as s:
        assert s.scalar(select(func.count()).where(NotificationRow.person_id == primary)) == 1


def test_refused_urgent_requests_say_why(client: TestClient, desk: Desk) -> None:
    world, _ = _setup(client, desk)
    first, second = _file(client, world.alice_token, "P3"), _file(client, world.alice_token, "P3")
    p4 = _file(client, world.alice_token, "P4")
    _sign_in(client, "alice@liveco.test")
    token = _csrf(client.get(f"/tickets/{first['id']}").text)

    # P4 is not among the plan's urgent priorities: no button, and a post says so.
    assert URGENT_BUTTON not in client.get(f"/tickets/{p4['id']}/urgent").text
    refused = client.post(f"/tickets/{p4['id']}/urgent", data={"csrf_token": token})
    assert refused.status_code == 403
    assert "does not include waking the engineer on duty for a ticket of this priority" in refused.text
    assert f'href="/tickets/{p4["id"]}"' in refused.text

    # One a day: the second ticket's request is refused, in the customer's language too.
    assert client.post(f"/tickets/{first['id']}/urgent", data={"csrf_token": token}).status_code == 200
    assert "0 of 1 urgent requests left today" in client.get(f"/tickets/{second['id']}/urgent").text
    limited = client.post(f"/tickets/{second['id']}/urgent", data={"csrf_token": token})
    assert limited.status_code == 429 and "used all of today&#39;s urgent requests" in limited.text
    limited_zh = client.post(f"/tickets/{second['id']}/urgent?lang=zh", data={"csrf_token": token})
    assert limited_zh.status_code == 429 and "今日的紧急呼叫次数已用完" in limited_zh.text
    assert _pages(desk) == 1

    # A solved ticket offers nothing, and cannot be made urgent.
    agent = bearer(world.agent_token)
    solved = client.post(f"/api/v1/tickets/{second['id']}/status", json={"status": "solved"}, headers=agent)
    assert solved.status_code == 200
    assert 'hx-get="/tickets/{}/urgent"'.format(second["id"]) not in client.get(f"/tickets/{second['id']}").text
    assert URGENT_BUTTON not in client.get(f"/tickets/{second['id']}/urgent").text


def test_queue_plans_and_other_tenants_get_no_urgent_action(client: TestClient, desk: Desk) -> None:
    world, _ = _setup(client, desk)
    liveco = _file(client, world.alice_token, "P3")
    classmate = _file(client, world.bob_token, "P1")  # ClassMate's standard plan is a queue
    _sign_in(client, "bob@classmate.test")
    assert URGENT_BUTTON not in client.get(f"/tickets/{classmate['id']}/urgent").text
    token = _csrf(client.get(f"/tickets/{classmate['id']}").text)
    assert client.post(f"/tickets/{classmate['id']}/urgent", data={"csrf_token": token}).status_code == 403
    # LiveCo's ticket does not exist for Bob: not its page, not its action.
    html = {"accept": "text/html"}
    assert client.get(f"/tickets/{liveco['id']}", headers=html).status_code == 404
    assert client.get(f"/tickets/{liveco['id']}/urgent", headers=html).status_code == 404
    stranger = client.post(f"/tickets/{liveco['id']}/urgent", data={"csrf_token": token}, headers=html)
    assert stranger.status_code == 404 and "engineer on duty" not in stranger.text
    assert _pages(desk) == 0


def test_duty_messages_exist_in_both_languages() -> None:
    catalogs = {}
    for lang in ("en", "zh"):
        text = resources.files("zhiban.duty").joinpath(f"messages/{lang}.json").read_text(encoding="utf-8")
        catalogs[lang] = json.loads(text)
    assert catalogs["en"].keys() == catalogs["zh"].keys()
