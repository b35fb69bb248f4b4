"""Triage jobs: a ticket filed before the model is ready here is triaged in the background."""

from __future__ import annotations

from typing import Any

from zhiban.engine import JobContext, JobRegistry
from zhiban.store.db import transaction
from zhiban.tickets import service as tickets

registry = JobRegistry()
TRIAGE_TICKET = "triage.ticket"


@registry.handler(TRIAGE_TICKET)
def triage_later(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Train or load the model (slow the first time), then triage the ticket unless an agent already did."""
    from zhiban.triage import service
    from zhiban.triage.store import TriageRow

    with transaction(ctx.session_factory) as session:
        ticket = tickets.ref(session, int(payload["ticket_id"]))
        if ticket is not None and session.get(TriageRow, ticket.id) is None:
            service.triage_ticket(session, ctx.clock, ticket)
        ctx.finish(session)
