"""Triage of every new ticket, inside the transaction that files it."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.engine import enqueue
from zhiban.tickets import events
from zhiban.tickets.model import EventKind, TicketChange
from zhiban.triage import service
from zhiban.triage.jobs import TRIAGE_TICKET

log = logging.getLogger("zhiban.triage")


@events.subscribe
def triage_on_created(session: Session, clock: Clock, change: TicketChange) -> None:
    """Classify, suggest a priority and route a ticket as it is filed; a triage failure never loses the ticket."""
    if change.kind != EventKind.CREATED:
        return
    ticket = change.ticket
    try:
        # A savepoint: if triage fails, only its own writes are undone, and the ticket is still filed.
        with session.begin_nested():
            if service.ready_model(session, clock) is None:
                enqueue(
                    session,
                    TRIAGE_TICKET,
                    {"ticket_id": ticket.id},
                    due_at=clock.now(),
                    dedup_key=f"triage:{ticket.id}",
                )
            else:
                service.triage_ticket(session, clock, ticket)
    except Exception:
        log.exception("triage failed for ticket #%s; it stays untriaged", ticket.id)
