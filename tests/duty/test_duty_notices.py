"""SLA notices reach a person who is awake, and the agent's in-app inbox, over the API (SQLite and PostgreSQL).

The test clock starts on Saturday 03:00 Asia/Shanghai; LiveCo's Enterprise plan is put on standby, paging
through a policy whose first level is "Primary". Enterprise P1: first response due in 15 minutes, 7x24.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.duty.test_on_duty import _file, _setup
from tests.incidents.incident_kit import drain, worker
from tests.tenancy import World, bearer
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.duty.notices import TELL_TEAM_JOB
from zhiban.engine.store import Job
from zhiban.identity import service as identity
from zhiban.identity.model import DEFAULT_SCOPES
from zhiban.notify.store import InboxRow, NotificationRow
from zhiban.tickets import service as tickets

WARNED = timedelta(minutes=11, seconds=20)  # 75 % of 15 minutes
BREACHED = timedelta(minutes=15, seconds=5)


def _assign(client: TestClient, world: World, ticket_id: int, person_id: str) -> None:
    admin = bearer(world.admin_token)
    done = client.patch(f"/api/v1/tickets/{ticket_id}", json={"assignee_id": person_id}, headers=admin)
    assert done.status_code == 200, done.text


def _sla_notices(desk: Desk, ticket_id: int, kind: str = "sla_breach") -> dict[str, str]:
    """person id -> why they were told, for one ticket's SLA notices of a kind."""
    with desk.sessions() as s:
        rows = s.scalars(select(InboxRow).where(InboxRow.ticket_id == ticket_id, InboxRow.kind == kind))
        return {r.person_id: r.reason for r in rows}


def _sla_mail_to(desk: Desk, ticket_id: int, kind: str = "sla.breach") -> list[str]:
    with desk.sessions() as s:
        query = select(NotificationRow.person_id).where(
            NotificationRow.ticket_id == ticket_id, NotificationRow.kind == kind
        )
        return sorted(p for p in s.scalars(query) if p is not None)


def _token(desk: Desk, person_id: str) -> str:
    with desk.transaction() as s:
        return identity.create_token(s, desk.clock, person_id=person_id, name="t", scopes=DEFAULT_SCOPES).plain


def test_a_standby_p1_breaching_at_night_tells_the_engineer_on_call(
    client: TestClient, desk: Desk, clock: FrozenClock
) -> None:
    world, primary = _setup(client, desk)
    ticket = _file(client, world.alice_token, "P1")
    _assign(client, world, ticket["id"], world.agent_id)  # the assignee, asleep at 03:00
    w = worker(desk)
    clock.advance(WARNED)
    drain(w)
    assert _sla_notices(desk, ticket["id"], "sla_warning") == {primary: "on_call", world.agent_id: "assignee"}
    clock.advance(BREACHED - WARNED)
    drain(w)
    told = _sla_notices(desk, ticket["id"])
    # The engineer on call for the plan's paging service now, and the assignee (whose mail waits for the morning);
    # not the managers, who are asleep too.
    assert told == {primary: "on_call", world.agent_id: "assignee"}
    assert world.admin_id not in told
    assert _sla_mail_to(desk, ticket["id"]) == sorted([primary, world.agent_id])
    # Timers that run again tell nobody twice.
    clock.advance(timedelta(minutes=1))
    drain(w)
    assert _sla_mail_to(desk, ticket["id"]) == sorted([primary, world.agent_id])


def test_in_business_hours_the_assignee_and_the_dedicated_contact_are_told(
    client: TestClient, desk: Desk, clock: FrozenClock
) -> None:
    world, _ = _setup(client, desk)
    with desk.transaction() as s:
        contact = identity.find_person(s, "secondary@vendor.test")
    assert contact is not None
    put = client.put(
        f"/api/v1/organizations/{world.liveco}/contacts",
        json={"dedicated_contact_id": contact.id},
        headers=bearer(world.admin_token),
    )
    assert put.status_code == 200
    clock.advance(timedelta(days=2, hours=7))  # Monday 10:00 in Shanghai
    ticket = _file(client, world.alice_token, "P1")
    _assign(client, world, ticket["id"], world.agent_id)
    w = worker(desk)
    drain(w)
    clock.advance(BREACHED)
    drain(w)
    assert _sla_notices(desk, ticket["id"]) == {world.agent_id: "assignee", contact.id: "dedicated_contact"}
    assert _sla_mail_to(desk, ticket["id"]) == sorted([world.agent_id, contact.id])


def test_a_queue_plan_keeps_the_fixed_chain(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    world, primary = _setup(client, desk)
    queue = client.put(
        "/api/v1/sla/plans/enterprise", json={"support": {"mode": "queue"}}, headers=bearer(world.admin_token)
    )
    assert queue.status_code == 200, queue.text
    ticket = _file(client, world.alice_token, "P1")
    _assign(client, world, ticket["id"], world.agent_id)
    clock.advance(BREACHED)
    drain(worker(desk))
    told = _sla_notices(desk, ticket["id"])
    # Assignee, then (no team lead) the managers, as before on-duty plans: no one on call is told.
    assert told[world.agent_id] == "assignee" and told[world.admin_id] == "manager"
    assert primary not in told
    assert set(told.values()) == {"assignee", "manager"}


def test_the_inbox_shows_the_four_kinds_marks_read_and_is_private(
    client: TestClient, desk: Desk, clock: FrozenClock
) -> None:
    world, primary = _setup(client, desk)
    with desk.transaction() as s:
        team = identity.create_team(s, name="Network", domain="network")
        identity.add_team_member(s, team.id, primary)
    ticket = _file(client, world.alice_token, "P1")  # pages Primary, on call
    with desk.transaction() as s:
        tickets.route(s, clock, ticket["id"], team.id)  # as triage would
    w = worker(desk)
    drain(w)  # the team hears of the new ticket
    _assign(client, world, ticket["id"], primary)
    clock.advance(WARNED)
    drain(w)
    clock.advance(BREACHED - WARNED)
    drain(w)

    me = bearer(_token(desk, primary))
    inbox = client.get("/api/v1/inbox", headers=me)
    assert inbox.status_code == 200, inbox.text
    body = inbox.json()
    kinds = {n["kind"] for n in body["items"]}
    assert {"ticket_new", "ticket_assigned", "sla_warning", "sla_breach", "page"} <= kinds
    assert body["unread"] == len(body["items"])
    assert all(n["ticket_id"] == ticket["id"] for n in body["items"])
    page = next(n for n in body["items"] if n["kind"] == "page")
    assert page["incident_id"] == ticket["on_duty"]["incident_id"] and page["reason"] == "paged"

    # Marked read: one fewer unread, and it moves after the unread ones.
    first = body["items"][0]
    read = client.post(f"/api/v1/inbox/{first['id']}/read", headers=me)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    again = client.get("/api/v1/inbox", headers=me).json()
    assert again["unread"] == body["unread"] - 1
    assert again["items"][-1]["id"] == first["id"]
    unread_only = client.get("/api/v1/inbox?unread=true", headers=me).json()["items"]
    assert first["id"] not in [n["id"] for n in unread_only]
    only = client.get("/api/v1/inbox?kind=page&limit=1", headers=me).json()["items"]
    assert [n["kind"] for n in only] == ["page"]
    assert client.get("/api/v1/inbox?limit=1000", headers=me).status_code == 422

    # Another agent sees none of them and cannot mark them; a customer has no inbox.
    other = bearer(world.agent_token)
    theirs = client.get("/api/v1/inbox", headers=other).json()
    assert all(n["id"] not in {m["id"] for m in body["items"]} for n in theirs["items"])
    second = body["items"][1]
    assert client.post(f"/api/v1/inbox/{second['id']}/read", headers=other).status_code == 404
    assert client.post("/api/v1/inbox/read", headers=other).status_code == 200
    assert client.get("/api/v1/inbox", headers=me).json()["unread"] == body["unread"] - 1
    assert client.get("/api/v1/inbox", headers=bearer(world.alice_token)).json() == {"unread": 0, "items": []}

    # The agent's page lists them with the unread count; "mark all read" empties the count.
    html = client.get("/agent/inbox", headers=me)
    assert html.status_code == 200 and "SLA" in html.text and "script" not in html.text.split("<main")[1]
    count = client.get("/agent/inbox/count", headers=me)
    assert count.status_code == 200 and str(body["unread"] - 1) in count.text
    assert client.post("/api/v1/inbox/read", headers=me).json() == {"marked": body["unread"] - 1}
    assert client.get("/api/v1/inbox", headers=me).json()["unread"] == 0
    # The old SLA list still answers, from the same inbox.
    sla = client.get("/api/v1/sla/notifications", headers=me).json()
    assert {n["kind"] for n in sla} == {"warning", "breach"} and all(n["read_at"] for n in sla)


def test_a_team_hears_of_its_ticket_in_the_transaction_that_routes_it(
    client: TestClient, desk: Desk, clock: FrozenClock
) -> None:
    world, primary = _setup(client, desk)
    with desk.transaction() as s:
        team = identity.create_team(s, name="Network", domain="network")
        identity.add_team_member(s, team.id, primary)
        identity.add_team_member(s, team.id, world.agent_id)
    routed = _file(client, world.alice_token, "P3", subject="routed by triage's batch")
    by_hand = _file(client, world.alice_token, "P3", subject="routed by an agent")
    never_routed = _file(client, world.alice_token, "P3", subject="no rule matches")
    with desk.sessions() as s:  # filing queues nothing for the team: routing tells it
        assert s.scalars(select(Job.id).where(Job.kind == TELL_TEAM_JOB)).all() == []
    with desk.transaction() as s:
        assert tickets.route_new(s, clock, {routed["id"]: team.id}) == {routed["id"]: team.id}
        assert _told_of_in(s, routed["id"]) == {primary, world.agent_id}  # same transaction
        # Routing a routed ticket again changes nothing and tells nobody twice.
        assert tickets.route_new(s, clock, {routed["id"]: team.id}) == {}
    _assign(client, world, by_hand["id"], world.agent_id)
    with desk.transaction() as s:
        tickets.route(s, clock, by_hand["id"], team.id)
        tickets.route(s, clock, by_hand["id"], team.id)
    assert _told_of(desk, routed["id"]) == {primary, world.agent_id}
    assert _told_of(desk, by_hand["id"]) == {primary}  # its assignee already knows
    assert _told_of(desk, never_routed["id"]) == set()
    with desk.sessions() as s:
        rows = s.scalars(select(InboxRow).where(InboxRow.kind == "ticket_new")).all()
        assert len(rows) == 3


def _told_of_in(s: Session, ticket_id: int) -> set[str]:
    query = select(InboxRow.person_id).where(InboxRow.ticket_id == ticket_id, InboxRow.kind == "ticket_new")
    return set(s.scalars(query))


def _told_of(desk: Desk, ticket_id: int) -> set[str]:
    with desk.sessions() as s:
        return _told_of_in(s, ticket_id)
