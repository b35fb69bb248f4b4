"""Tickets filed in a rush share transactions (store.group_commit): the API's `POST /api/v1/tickets` path.

A festival evening's outage makes hundreds of customers file at once. Filed one transaction each, every ticket
paid BEGIN and COMMIT and read again what the tickets before it had just read (the plan's policy version in force,
the organization's calendar). Here each request checks its input and its caller, hands a `Filing` to the
process's intake and waits; one writer thread files whatever has queued meanwhile in ONE transaction, exactly as
one request would have filed each (`service.create_ticket`: the SLA clocks start at each ticket's own creation time,
a page opens in the same transaction), commits, and only then answers: a 201 still means "committed". A batch that
fails is filed again one ticket per transaction, so one refused filing answers its own error and fails no other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import Histogram
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock
from zhiban.core.errors import RateLimited
from zhiban.core.metrics import REGISTRY
from zhiban.core.principal import Principal
from zhiban.identity import service as identity
from zhiban.store.group_commit import GroupCommit, kept_on
from zhiban.tickets import service
from zhiban.tickets.model import Channel, OnDuty, RtcFields

if TYPE_CHECKING:
    from zhiban.tickets.store import TicketRow

Answer = TypeVar("Answer")
# Tickets wait at most this many in one process; beyond, the caller is told to retry (429), never dropped.
MAX_WAITING = 5_000
MAX_BATCH = 200
# A lone ticket waits this long for company: a transaction costs about as much as a few tickets in it.
LINGER_SECONDS = 0.002

BATCH_TICKETS = Histogram(
    "zhiban_ticket_intake_batch_tickets",
    "Tickets filed together in one intake transaction",
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200),
)
COMMIT_SECONDS = Histogram(
    "zhiban_ticket_intake_commit_seconds",
    "Wall time of one ticket intake transaction, from BEGIN to COMMIT",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)


class TicketsWaiting(RateLimited):
    """More tickets wait to be filed than the process holds: the client should retry shortly."""


@dataclass(frozen=True, slots=True)
class Filing:
    """One request's checked input: what `service.create_ticket` takes."""

    principal: Principal
    subject: str
    body: str
    priority: str
    channel: Channel
    category: str | None = None
    requester_id: str | None = None
    fields: RtcFields | None = None  # the RTC fields (app, channel, users, SDK, when), checked by create_ticket


Render = Callable[["TicketRow", OnDuty | None], Answer]


class TicketIntake(GroupCommit[Filing, Answer]):
    """The process's ticket writer: `commit_blocking(filing)` returns `render(ticket, on_duty)` once committed."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, render: Render[Answer]) -> None:
        def file(session: Session, filings: list[Filing]) -> list[Answer | BaseException]:
            answers: list[Answer | BaseException] = []
            # Every filer and requester, and their organizations, in two reads for the whole batch.
            identity.preload_people(session, [p for f in filings for p in (f.principal.person_id, f.requester_id) if p])
            for f in filings:
                ticket = service.create_ticket(
                    session,
                    clock,
                    f.principal,
                    subject=f.subject,
                    body=f.body,
                    priority=f.priority,
                    channel=f.channel,
                    category=f.category,
                    requester_id=f.requester_id,
                    fields=f.fields,
                )
                # Rendered in the transaction: after the commit the rows are gone from the session.
                answers.append(render(ticket, service.on_duty_of_filed(session, ticket.id)))
            return answers

        super().__init__(
            sessions,
            file,
            name="ticket-intake",
            full=lambda: TicketsWaiting("too many tickets are waiting to be filed; retry shortly"),
            max_batch=MAX_BATCH,
            max_queue=MAX_WAITING,
            linger=LINGER_SECONDS,
            batch_sizes=BATCH_TICKETS,
            commit_seconds=COMMIT_SECONDS,
        )


def intake_for(owner: object, make: Callable[[], TicketIntake[Answer]]) -> TicketIntake[Answer]:
    """The ticket intake kept on `owner` (the web app's state), made on first use."""
    return kept_on(owner, "ticket_intake", TicketIntake, make)
