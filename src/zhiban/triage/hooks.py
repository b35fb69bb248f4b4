"""Triage of new tickets: after they are filed, in batches from a worker (tickets.events.follow)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.tickets import events
from zhiban.tickets.model import EventKind, TicketChange
from zhiban.triage import service


def triage_filed(session: Session, clock: Clock, changes: Sequence[TicketChange]) -> None:
    """Classify, suggest a priority and route the tickets just filed (filing never waits for a model)."""
    service.triage_new(session, clock, [change.ticket for change in changes])


events.follow("triage", triage_filed, kinds={EventKind.CREATED})
