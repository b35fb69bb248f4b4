"""Ticket events for other features: SLA clocks, triage, incident links subscribe here.

Listeners run inside the transaction that recorded the event, so whatever they save (clocks,
timers, links) commits or rolls back with the ticket change itself.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.tickets.store import TicketEventRow, TicketRow

TicketListener = Callable[[Session, Clock, TicketRow, TicketEventRow], None]
_listeners: list[TicketListener] = []


def subscribe(listener: TicketListener) -> TicketListener:
    """Call `listener` after every ticket event (usable as a decorator; idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def emit(session: Session, clock: Clock, ticket: TicketRow, event: TicketEventRow) -> None:
    for listener in list(_listeners):
        listener(session, clock, ticket, event)
