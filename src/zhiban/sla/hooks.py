"""SLA clocks follow the tickets: every ticket event replays the ticket's log; calendar edits re-apply."""

from __future__ import annotations

from sqlalchemy.orm import Session

from zhiban.calendars import service as calendars
from zhiban.core.clock import Clock
from zhiban.sla import service
from zhiban.sla.store import SlaTicketRow
from zhiban.tickets import events
from zhiban.tickets.store import TicketEventRow, TicketRow

# Events that cannot move a clock; the replay would only rewrite the same rows.
_IGNORED = frozenset({"internal_note", "assigned"})


@events.subscribe
def on_ticket_event(session: Session, clock: Clock, ticket: TicketRow, event: TicketEventRow) -> None:
    """Recompute the ticket's clocks from its log, in the transaction that recorded the event."""
    if event.kind in _IGNORED and session.get(SlaTicketRow, ticket.id) is not None:
        return
    service.recompute_ticket(session, clock, ticket, event.kind)


@calendars.on_change
def on_calendar_change(session: Session, clock: Clock, calendar_id: str) -> None:
    """A calendar edit applies from now on to the open tickets that count on that calendar."""
    service.recompute_open_tickets(session, clock, calendar_id=calendar_id)
