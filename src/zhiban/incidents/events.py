"""Incident changes for other features: on-duty paging from tickets follows its incidents here.

Listeners hear an `IncidentChange` value inside the transaction that made the change, so what they save
(a ticket's on-duty state) commits or rolls back with it. Incidents never import their listeners.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock


class IncidentChangeKind(StrEnum):
    PAGED = "paged"  # an escalation step queued pages for at least one person
    ACKNOWLEDGED = "acknowledged"
    RETRIGGERED = "retriggered"  # an acknowledgement timed out, or a resolved incident was raised again
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class IncidentChange:
    incident_id: str
    number: int
    kind: IncidentChangeKind
    at: datetime
    ticket_id: int | None = None  # set for the internal incident that pages on-duty for a ticket
    actor_id: str | None = None
    paged: int = 0  # how many people a PAGED step reached
    people: tuple[str, ...] = ()  # who a PAGED step reached (person ids): their in-app notice of the page
    title: str = ""


IncidentListener = Callable[[Session, Clock, IncidentChange], None]
IncidentBatchListener = Callable[[Session, Clock, Sequence[IncidentChange]], None]
_listeners: list[IncidentListener] = []
_batch_listeners: list[IncidentBatchListener] = []


def subscribe(listener: IncidentListener) -> IncidentListener:
    """Call `listener` after every incident change (usable as a decorator; idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def subscribe_many(listener: IncidentBatchListener) -> IncidentBatchListener:
    """Call `listener` once with all the changes made together (a storm's first pages), in order; idempotent.

    For a listener whose work is a statement per call: it records a storm's changes with one.
    """
    if listener not in _batch_listeners:
        _batch_listeners.append(listener)
    return listener


def emit(session: Session, clock: Clock, change: IncidentChange) -> None:
    emit_many(session, clock, [change])


def emit_many(session: Session, clock: Clock, changes: Sequence[IncidentChange]) -> None:
    """Tell every listener of these changes: `subscribe` ones change by change, `subscribe_many` ones at once."""
    if not changes:
        return
    for listener in list(_listeners):
        for change in changes:
            listener(session, clock, change)
    for batch_listener in list(_batch_listeners):
        batch_listener(session, clock, changes)
