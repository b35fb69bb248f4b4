"""On-duty paging from tickets, over the API: which tickets wake someone, one incident per ticket, and what
the customer sees of it. The test clock starts on Saturday 03:00 Asia/Shanghai."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.incidents.incident_kit import build as build_paging
from tests.incidents.incident_kit import drain, worker
from tests.tenancy import World, bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.incidents import service as incidents
from zhiban.incidents.store import IncidentRow
from zhiban.notify.store import NotificationRow

SERVICE = "media network cn-east"


def _setup(client: TestClient, desk: Desk) -> tuple[World, str]:
    world = build_world(desk)
    paging = build_paging(desk)  # a policy paging "primary" at once, then "secondary"
    admin = bearer(world.admin_token)
    support = {"mode": "standby", "paging_service": SERVICE, "urgent_priorities": ["P3"], "urgent_per_day": 1}
    ok = client.put("/api/v1/sla/plans/enterprise", json={"support": support}, headers=admin)
    assert ok.status_code == 200, ok.text
    assert ok.json()["support"]["paging_priorities"] == ["P1", "P2"]  # standby's defaults
    return world, paging.primary


def _file(client: TestClient, token: str, priority: str, subject: str = "直播卡顿 stream stutters") -> dict:
    made = client.post(
        "/api/v1/tickets", json={"subject": subject, "body": "room-8812 since 02:50", "priority": priority},
        headers=bearer(token),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()


def _incidents(desk: Desk) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).select_from(IncidentRow)) or 0


def _pages_to(desk: Desk, person_id: str) -> int:
    with desk.sessions() as s:
        mine = (NotificationRow.person_id == person_id) & (NotificationRow.subject_kind == "incident")
        return s.scalar(select(func.count()).where(mine)) or 0


def test_standby_p1_pages_once_and_the_customer_sees_the_acknowledgement(client: TestClient, desk: Desk) -> None:
    world, primary = _setup(client, desk)
    ticket = _file(client, world.alice_token, "P1")
    on_duty = ticket["on_duty"]
    assert on_duty is not None and on_duty["paged_at"] is not None and on_duty["acknowledged_at"] is None
    assert _pages_to(desk, primary) == 1
    # Raised again (an agent re-sets P1 via P2): the same incident, no second page.
    agent = bearer(world.agent_token)
    assert client.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "P2"}, headers=agent).status_code == 200
    assert _incidents(desk) == 1 and _pages_to(desk, primary) == 1
    # The engineer acknowledges; the customer's view names them.
    desk.clock.advance(timedelta(minutes=3))  # type: ignore[attr-defined]
    with desk.transaction() as s:
        incidents.acknowledge_as(s, desk.clock, on_duty["incident_id"], "primary@vendor.test", via="test")
    seen = client.get(f"/api/v1/tickets/{ticket['id']}", headers=bearer(world.alice_token)).json()["on_duty"]
    assert seen["acknowledged_by"] == "Primary" and seen["acknowledged_at"] is not None
    assert seen["incident_id"] == on_duty["incident_id"]
    listed = client.get("/api/v1/tickets", headers=bearer(world.alice_token)).json()
    assert listed[0]["on_duty"]["acknowledged_by"] == "Primary"
    # Solving the ticket resolves its incident.
    solved = client.post(f"/api/v1/tickets/{ticket['id']}/status", json={"status": "solved"}, headers=agent)
    assert solved.status_code == 200
    with desk.sessions() as s:
        assert s.get(IncidentRow, on_duty["incident_id"]).status == "resolved"
        # A ticket incident is internal: never among the incidents a customer organization sees.
        assert incidents.open_incidents_for_org(s, world.liveco) == []


def test_what_does_not_page(client: TestClient, desk: Desk) -> None:
    world, primary = _setup(client, desk)
    assert _file(client, world.alice_token, "P3")["on_duty"] is None  # standby pages P1 and P2 only
    assert _file(client, world.bob_token, "P1")["on_duty"] is None  # ClassMate's standard plan is a queue
    assert _incidents(desk) == 0 and _pages_to(desk, primary) == 0


def test_a_priority_raised_later_pages(client: TestClient, desk: Desk) -> None:
    world, primary = _setup(client, desk)
    ticket = _file(client, world.alice_token, "P4")
    raised = client.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "P1"}, headers=bearer(world.agent_token))
    assert raised.json()["on_duty"]["paged_at"] is not None
    assert _pages_to(desk, primary) == 1


def test_the_customer_raises_the_priority_and_the_engineer_is_paged(client: TestClient, desk: Desk) -> None:
    world, primary = _setup(client, desk)
    alice = bearer(world.alice_token)
    ticket = _file(client, world.alice_token, "P3")
    url = f"/api/v1/tickets/{ticket['id']}"
    # Asking to reassign it is the agents' call: refused before anything changes.
    refused = client.patch(url, json={"priority": "P1", "assignee_id": world.agent_id}, headers=alice)
    assert refused.status_code == 403 and refused.json()["type"].endswith("forbidden")
    assert client.get(url, headers=alice).json()["priority"] == "P3" and _pages_to(desk, primary) == 0
    raised = client.patch(url, json={"priority": "P1"}, headers=alice)
    assert raised.status_code == 200, raised.text
    assert raised.json()["priority"] == "P1" and raised.json()["on_duty"]["paged_at"] is not None
    assert _pages_to(desk, primary) == 1
    # Lowering is the agents' call; so is anything on a solved ticket.
    lowered = client.patch(url, json={"priority": "P4"}, headers=alice)
    assert lowered.status_code == 403 and client.get(url, headers=alice).json()["priority"] == "P1"
    other = _file(client, world.alice_token, "P4")
    agent = bearer(world.agent_token)
    assert client.post(f"/api/v1/tickets/{other['id']}/status", json={"status": "solved"}, headers=agent).is_success
    assert client.patch(f"/api/v1/tickets/{other['id']}", json={"priority": "P1"}, headers=alice).status_code == 403
    # Another organization's customer cannot see it, let alone raise it.
    assert client.patch(url, json={"priority": "P2"}, headers=bearer(world.bob_token)).status_code == 404
    assert _incidents(desk) == 1 and _pages_to(desk, primary) == 1


def test_dedicated_plan_pages_only_outside_business_hours(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    world, primary = _setup(client, desk)
    admin = bearer(world.admin_token)
    support = {"mode": "dedicated", "paging_service": SERVICE}
    assert client.put("/api/v1/sla/plans/enterprise", json={"support": support}, headers=admin).status_code == 200
    with desk.transaction() as s:
        contact = identity.find_person(s, "secondary@vendor.test")
    assert contact is not None
    put = client.put(
        f"/api/v1/organizations/{world.liveco}/contacts", json={"dedicated_contact_id": contact.id}, headers=admin
    )
    assert put.status_code == 200 and put.json()["dedicated_contact_id"] == contact.id
    # Saturday 03:00: P2 waits, P1 pages.
    assert _file(client, world.alice_token, "P2")["on_duty"] is None
    assert _file(client, world.alice_token, "P1")["on_duty"]["paged_at"] is not None
    # Monday 10:00 Shanghai (business hours): nothing pages, the ticket goes to the dedicated contact.
    clock.advance(timedelta(days=2, hours=7))
    in_hours = _file(client, world.alice_token, "P1")
    assert in_hours["on_duty"] is None and in_hours["assignee_id"] == contact.id
    assert _pages_to(desk, primary) == 1


def test_urgent_request_is_limited_by_the_plan(client: TestClient, desk: Desk) -> None:
    world, primary = _setup(client, desk)
    p4 = _file(client, world.alice_token, "P4")
    refused = client.post(f"/api/v1/tickets/{p4['id']}/urgent", json={}, headers=bearer(world.alice_token))
    assert refused.status_code == 403  # the plan allows urgent requests on P3 only
    p3 = _file(client, world.alice_token, "P3")
    alice = bearer(world.alice_token)
    urgent = client.post(f"/api/v1/tickets/{p3['id']}/urgent", json={"note": "all rooms down"}, headers=alice)
    assert urgent.status_code == 200 and urgent.json()["paged_at"] is not None
    again = client.post(f"/api/v1/tickets/{p3['id']}/urgent", json={}, headers=bearer(world.alice_token))
    assert again.status_code == 200 and again.json()["incident_id"] == urgent.json()["incident_id"]
    assert _pages_to(desk, primary) == 1
    other = _file(client, world.alice_token, "P3")
    limited = client.post(f"/api/v1/tickets/{other['id']}/urgent", json={}, headers=bearer(world.alice_token))
    assert limited.status_code == 429  # one a day
    # Another tenant's ticket does not exist for this customer.
    stranger = client.post(f"/api/v1/tickets/{p3['id']}/urgent", json={}, headers=bearer(world.bob_token))
    assert stranger.status_code == 404


def test_pages_follow_the_escalation_and_stop_on_ack(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    world, _ = _setup(client, desk)
    ticket = _file(client, world.alice_token, "P1")
    w = worker(desk)
    drain(w)
    clock.advance(timedelta(minutes=6))
    drain(w)
    with desk.sessions() as s:
        secondary = identity.find_person(s, "secondary@vendor.test")
    assert secondary is not None and _pages_to(desk, secondary.id) == 1  # level 2 after 5 minutes unacknowledged
    view = client.get(f"/api/v1/tickets/{ticket['id']}", headers=bearer(world.alice_token)).json()["on_duty"]
    assert view["acknowledged_at"] is None


def test_a_ticket_incident_never_reaches_a_status_page(client: TestClient, desk: Desk) -> None:
    world, _ = _setup(client, desk)
    admin = bearer(world.admin_token)
    # Even with its service published, and a public update attempted, the page stays internal.
    mapping = {"component": "cn-east", "title": "Media network in East China"}
    assert client.put(f"/api/v1/status/published-services/{SERVICE}", json=mapping, headers=admin).status_code == 200
    ticket = _file(client, world.alice_token, "P1", subject="LiveCo secret room-8812")
    with desk.sessions() as s:
        number = s.scalar(select(IncidentRow.number).where(IncidentRow.id == ticket["on_duty"]["incident_id"]))
    update = {"status": "identified", "body": "We are on it"}
    refused = client.post(f"/api/v1/status/incidents/{number}/updates", json=update, headers=admin)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/conflict")
    desk.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    for path, headers in (("/api/v1/status", {}), ("/api/v1/status/organizations/liveco", bearer(world.alice_token))):
        doc = client.get(path, headers=headers)
        assert doc.status_code == 200 and doc.json()["current"] == [], path
        assert "room-8812" not in doc.text
    assert "room-8812" not in client.get("/status/feed.atom").text


def test_a_solved_ticket_reopened_by_the_customer_pages_again(client: TestClient, desk: Desk) -> None:
    world, primary = _setup(client, desk)
    ticket = _file(client, world.alice_token, "P1")
    first = ticket["on_duty"]["incident_id"]
    agent, alice = bearer(world.agent_token), bearer(world.alice_token)
    assert client.post(f"/api/v1/tickets/{ticket['id']}/status", json={"status": "solved"}, headers=agent).is_success
    desk.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    reply = client.post(f"/api/v1/tickets/{ticket['id']}/comments", json={"body": "still down"}, headers=alice)
    assert reply.status_code == 201
    seen = client.get(f"/api/v1/tickets/{ticket['id']}", headers=alice).json()
    assert seen["status"] == "open" and seen["on_duty"]["incident_id"] == first  # the same incident, re-triggered
    with desk.sessions() as s:
        assert s.get(IncidentRow, first).status == "triggered"
    assert _incidents(desk) == 1 and _pages_to(desk, primary) == 2


def test_null_support_terms_leave_the_plan_as_it_is(client: TestClient, desk: Desk) -> None:
    world, _ = _setup(client, desk)
    sent = {"support": {"mode": None, "paging_service": None, "urgent_per_day": None, "paging_priorities": None}}
    ok = client.put("/api/v1/sla/plans/enterprise", json=sent, headers=bearer(world.admin_token))
    assert ok.status_code == 200, ok.text
    assert ok.json()["support"]["mode"] == "standby" and ok.json()["support"]["urgent_per_day"] == 1
