"""Ticket summaries: what other features (SLA timers and notices) read of a ticket, by id, as values."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.tenancy import build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.tickets import service as tickets
from zhiban.tickets.model import TicketSummary


def test_a_summary_follows_the_ticket_as_it_changes(desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        alice, agent = identity.person(s, w.alice_id), identity.person(s, w.agent_id)
        assert alice is not None and agent is not None
        customer, staff = identity.principal_of(alice), identity.principal_of(agent)
        team = identity.create_team(s, name="Media")
        created_at = clock.now()
        tid = tickets.create_ticket(s, clock, customer, subject="No audio", body="since 9:00", priority="P3").id
        first = tickets.summary(s, tid)
        assert first == TicketSummary(tid, w.liveco, "No audio", "P3", "new", created_at, None, None)
    clock.advance(timedelta(minutes=5))
    with desk.transaction() as s:
        tickets.change_priority(s, clock, staff, tid, "P1")
        tickets.assign(s, clock, staff, tid, w.agent_id)
        tickets.change_status(s, clock, staff, tid, "pending")
        tickets.route(s, clock, tid, team.id)
    with desk.transaction() as s:
        now = tickets.summary(s, tid)
        assert now is not None and (now.priority, now.status) == ("P1", "pending")
        assert (now.team_id, now.assignee_id, now.organization_id) == (team.id, w.agent_id, w.liveco)
        assert now.created_at == created_at  # the ticket's birth, not its last change
        with pytest.raises(dataclasses.FrozenInstanceError):
            now.status = "solved"  # type: ignore[misc]


def test_summaries_keep_each_ticket_in_its_organization_and_leave_unknown_ids_out(
    desk: Desk, clock: FrozenClock
) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        alice, bob = identity.person(s, w.alice_id), identity.person(s, w.bob_id)
        assert alice is not None and bob is not None
        ids = {
            tickets.create_ticket(s, clock, identity.principal_of(p), subject=f"{p.name} {n}", body="b").id: p
            for n in range(3)
            for p in (alice, bob)
        }
    wanted = [*reversed(ids), 10_000, *ids, -1]  # out of order, twice each, with ids no ticket has
    with desk.transaction() as s:
        found = tickets.summaries(s, wanted)
        assert set(found) == set(ids)
        for tid, person in ids.items():
            assert found[tid].id == tid and found[tid].organization_id == person.organization_id
            assert found[tid].subject.startswith(person.name)
        assert tickets.summary(s, 10_000) is None
        assert tickets.summaries(s, []) == {} and tickets.summaries(s, [10_000]) == {}


def test_summaries_of_more_ids_than_one_query_takes(desk: Desk, clock: FrozenClock) -> None:
    """Ids are read in bounded chunks: tickets past the first chunk are found too."""
    w = build_world(desk)
    with desk.transaction() as s:
        alice = identity.person(s, w.alice_id)
        assert alice is not None
        tid = tickets.create_ticket(s, clock, identity.principal_of(alice), subject="late", body="b").id
    with desk.transaction() as s:
        found = tickets.summaries(s, [*range(tid + 1, tid + 4_500), tid])  # the real one sorts first, others miss
        assert list(found) == [tid]
        found = tickets.summaries(s, [*range(-4_500, 0), tid])  # the real one sorts last, in the third chunk
        assert list(found) == [tid] and found[tid].subject == "late"
