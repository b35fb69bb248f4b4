"""Ticket changes for other features: SLA clocks, triage, mail and incident links subscribe here.

Listeners hear a `TicketChange` value (never the ticket's rows), inside the transaction that recorded
it, so whatever they save (clocks, timers, links) commits or rolls back with the ticket change itself.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.tickets.model import TicketChange

TicketListener = Callable[[Session, Clock, TicketChange], None]
_listeners: list[TicketListener] = []


def subscribe(listener: TicketListener) -> TicketListener:
    """Call `listener` after every ticket change (usable as a decorator; idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def emit(session: Session, clock: Clock, change: TicketChange) -> None:
    for listener in list(_listeners):
        listener(session, clock, change)
