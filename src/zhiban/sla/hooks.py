"""SLA clocks follow the tickets: every ticket change replays the ticket's log; calendar edits re-apply.

SLA notices link to the portal as the environment's settings name it, read at each mail.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from zhiban.calendars import service as calendars
from zhiban.core.clock import Clock
from zhiban.core.settings import get_settings
from zhiban.sla import notices, service
from zhiban.sla.policies import forget_organization_calendars
from zhiban.sla.store import SlaTicketRow
from zhiban.tickets import events, search
from zhiban.tickets.model import BOOKKEEPING_KINDS, ON_DUTY_KINDS, EventKind, TicketChange

notices.current_settings.read_from(get_settings)
search.narrow_with("breaching_within_hours", service.tickets_due_within)

# Changes that cannot move a clock; the replay would only rewrite the same rows.
_IGNORED = frozenset({EventKind.INTERNAL_NOTE, EventKind.ASSIGNED, *ON_DUTY_KINDS, *BOOKKEEPING_KINDS})


@events.subscribe
def on_ticket_event(session: Session, clock: Clock, change: TicketChange) -> None:
    """Recompute the ticket's clocks from its changes, in the transaction that recorded this one."""
    if change.kind in _IGNORED and session.get(SlaTicketRow, change.ticket.id) is not None:
        return
    service.recompute_ticket(session, clock, change.ticket, change.kind.value, latest=change)


@calendars.on_change
def on_calendar_change(session: Session, clock: Clock, calendar_id: str) -> None:
    """A calendar edit applies from now on to the open tickets that count on that calendar."""
    forget_organization_calendars(session)
    service.recompute_open_tickets(session, clock, calendar_id=calendar_id)
