"""Tickets publish their changes as values, and give their history to other features the same way."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from tests.tenancy import build_world
from zhiban.core.clock import Clock, FrozenClock
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal, Role
from zhiban.tickets import events
from zhiban.tickets import service as tickets
from zhiban.tickets.model import EventKind, Priority, Status, TicketChange


@pytest.fixture
def heard() -> Iterator[list[TicketChange]]:
    changes: list[TicketChange] = []

    def listen(session: Session, clock: Clock, change: TicketChange) -> None:
        changes.append(change)

    events.subscribe(listen)
    yield changes
    events._listeners.remove(listen)


def _people(desk: Desk) -> tuple[Principal, Principal]:
    w = build_world(desk)
    with desk.transaction() as s:
        alice, agent = identity.person(s, w.alice_id), identity.person(s, w.agent_id)
        assert alice is not None and agent is not None
        return identity.principal_of(alice), identity.principal_of(agent)


def test_listeners_hear_frozen_values_with_typed_kinds(desk: Desk, clock: FrozenClock, heard: list) -> None:
    alice, agent = _people(desk)
    with desk.transaction() as s:
        ticket = tickets.create_ticket(s, clock, alice, subject="No audio", body="since 9:00", priority="P2")
        tid, org = ticket.id, ticket.organization_id
    clock.advance(timedelta(minutes=5))
    with desk.transaction() as s:
        reply = tickets.add_comment(s, clock, agent, tid, body="Looking")
        tickets.change_priority(s, clock, agent, tid, "P1")
        reply_id = reply.id

    assert [c.kind for c in heard] == [
        EventKind.CREATED,
        EventKind.AGENT_REPLY,
        EventKind.STATUS_CHANGED,
        EventKind.PRIORITY_CHANGED,
    ]
    created, replied, opened, raised = heard
    assert all(isinstance(c, TicketChange) and c.ticket.id == tid and c.ticket.organization_id == org for c in heard)
    assert created.priority is Priority.P2 and created.status is None
    assert replied.comment_id == reply_id and replied.actor_id == agent.person_id
    assert opened.status is Status.OPEN and raised.priority is Priority.P1
    assert [c.seq for c in heard] == sorted(c.seq for c in heard)
    with pytest.raises(dataclasses.FrozenInstanceError):
        created.kind = EventKind.ASSIGNED  # type: ignore[misc]
    with pytest.raises(TypeError):
        created.data["priority"] = "P4"  # type: ignore[index]


def test_history_gives_the_changes_in_order_and_stops_before_a_given_one(
    desk: Desk, clock: FrozenClock, heard: list
) -> None:
    alice, agent = _people(desk)
    with desk.transaction() as s:
        tid = tickets.create_ticket(s, clock, alice, subject="Echo", body="on iOS").id
        tickets.add_comment(s, clock, agent, tid, body="noted", public=False)
        tickets.change_status(s, clock, agent, tid, "pending")
    with desk.transaction() as s:
        log = tickets.history(s, tid)
        assert log == heard  # the same values the listeners heard
        assert tickets.history(s, tid, before=heard[2].seq) == heard[:2]
        assert tickets.histories(s, [tid, 10_000]) == {tid: heard, 10_000: []}


def test_identity_hands_out_people_without_secrets(desk: Desk) -> None:
    w = build_world(desk, passwords=True)
    with desk.transaction() as s:
        person = identity.person_with_email(s, "AGENT@vendor.test ")
        assert person == identity.find_person(s, w.agent_id) == identity.person(s, w.agent_id)
        assert isinstance(person, Person) and person.role is Role.AGENT and person.is_staff
        assert not hasattr(person, "password_hash")
        assert [p.id for p in identity.staff(s)] == [w.admin_id, w.agent_id]
        assert identity.names_of(s, [w.alice_id, "nobody"]) == {w.alice_id: "Alice"}
        org = identity.organization_with_slug(s, "liveco")
        assert org is not None and org == identity.organization(s, w.liveco) and org.plan == "enterprise"


def test_followers_hear_committed_changes_in_batches_after_the_fact(desk: Desk, clock: FrozenClock) -> None:
    from zhiban.engine import Worker
    from zhiban.tickets.jobs import registry

    batches: list[list[tuple[int, EventKind]]] = []

    def follower(session: Session, clock: Clock, changes: object) -> None:
        batches.append([(c.ticket.id, c.kind) for c in changes])  # type: ignore[attr-defined]

    events.follow("test", follower, kinds={EventKind.CREATED, EventKind.AGENT_REPLY})
    try:
        alice, agent = _people(desk)
        with desk.transaction() as s:
            first = tickets.create_ticket(s, clock, alice, subject="No audio", body="since 9:00").id
            second = tickets.create_ticket(s, clock, alice, subject="No video", body="since 9:05").id
        with pytest.raises(RuntimeError), desk.transaction() as s:  # rolled back: nobody ever hears of it
            tickets.create_ticket(s, clock, alice, subject="never filed", body="x")
            raise RuntimeError("the request failed")
        with desk.transaction() as s:
            tickets.add_comment(s, clock, agent, first, body="Looking")  # its status change is not followed
        assert batches == []  # filing waited for no follower
        assert Worker(desk.sessions, registry, clock).run_once(limit=10) == 3
    finally:
        del events._followers["test"]
        events.follow("_refresh", lambda *_: None, kinds=())  # recompute the followed kinds
        del events._followers["_refresh"]
    # One claim took the three jobs: one call, in log order.
    assert batches == [[(first, EventKind.CREATED), (second, EventKind.CREATED), (first, EventKind.AGENT_REPLY)]]
