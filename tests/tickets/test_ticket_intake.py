"""A rush of tickets through the API shares transactions (tickets.intake), over a real server and real clients.

Each 201 still means committed and complete (SLA clocks from the ticket's own creation time), a refused filing in a
batch answers its own error and fails none of the others, and a request gives its connection back before it waits
for the batch: more requests wait at once than the connection pool holds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.tenancy import bearer, build_world
from tests.web.test_request_transaction import serving
from zhiban.desk import Desk
from zhiban.sla.store import ClockRow, SlaTicketRow
from zhiban.tickets.store import TicketRow

RUSH = 60  # more than the pool's 15 connections and the server's 40 worker threads


def _file(url: str, token: str, payload: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=url, headers=bearer(token), timeout=60) as client:
        return client.post("/api/v1/tickets", json=payload)


def test_a_rush_is_filed_in_shared_transactions_and_each_ticket_is_complete_when_answered(desk: Desk) -> None:
    world = build_world(desk)
    with serving(desk) as url, ThreadPoolExecutor(RUSH) as pool:
        answers = list(
            pool.map(
                lambda i: _file(url, world.alice_token, {"subject": f"Video freezes #{i}", "body": "room 8812"}),
                range(RUSH),
            )
        )
        intake = _intake_of(url)
    assert [a.status_code for a in answers] == [201] * RUSH, [a.text for a in answers if a.status_code != 201]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == RUSH and all(a.headers["location"] == f"/api/v1/tickets/{a.json()['id']}" for a in answers)
    with desk.sessions() as s:
        assert s.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.id.in_(ids))) == RUSH
        assert s.scalar(select(func.count()).select_from(SlaTicketRow).where(SlaTicketRow.ticket_id.in_(ids))) == RUSH
        # Each ticket's first-response clock started at that ticket's own creation time, batch or not.
        late = s.scalar(
            select(func.count())
            .select_from(ClockRow)
            .join(TicketRow, TicketRow.id == ClockRow.ticket_id)
            .where(ClockRow.ticket_id.in_(ids), ClockRow.metric == "first_response")
            .where(ClockRow.started_at != TicketRow.created_at)
        )
        assert late == 0
    assert intake is None or intake < RUSH  # batches: fewer transactions than tickets


def _intake_of(url: str) -> int | None:
    """Transactions the intake committed, from the desk's own metrics (None if the metric is not exposed)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("zhiban_ticket_intake_batch_tickets_count"):
            return int(float(line.split()[-1]))
    return None


def test_a_refused_filing_in_a_rush_answers_its_own_error_and_the_others_are_filed(desk: Desk) -> None:
    world = build_world(desk)
    good = {"subject": "No audio", "body": "Students hear nothing."}
    # An agent filing for a customer must name a customer user: naming the agent is refused (422), alone.
    bad = {"subject": "For nobody", "body": "x", "requester_id": world.agent_id}
    jobs = [(world.alice_token, good)] * 20 + [(world.agent_token, bad)] + [(world.bob_token, good)] * 20
    with serving(desk) as url, ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: _file(url, *job), jobs))
    codes = [a.status_code for a in answers]
    assert codes.count(201) == 40 and codes[20] == 422, codes
    problem = answers[20].json()
    assert answers[20].headers["content-type"].startswith("application/problem+json")
    assert "requester_id" in problem["detail"]
    with desk.sessions() as s:
        assert s.scalar(select(func.count()).select_from(TicketRow)) == 40
        assert s.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.subject == "For nobody")) == 0
