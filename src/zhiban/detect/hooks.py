"""Detection's subscriptions: closed telemetry windows feed the detector; tickets filed during a
telemetry incident are linked to it."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.detect.live import windows_closed
from zhiban.detect.tickets import link_to_open_incidents
from zhiban.telemetry.pipeline import on_windows_closed
from zhiban.tickets import events
from zhiban.tickets.model import EventKind, TicketChange

log = logging.getLogger("zhiban.detect")

on_windows_closed(windows_closed)


@events.subscribe
def link_new_ticket(session: Session, clock: Clock, change: TicketChange) -> None:
    """A ticket filed while its organization suffers a telemetry incident is linked to that incident."""
    if change.kind != EventKind.CREATED:
        return
    ticket = change.ticket
    try:
        with session.begin_nested():  # a failure here never loses the ticket
            link_to_open_incidents(session, ticket)
    except Exception:
        log.exception("linking ticket #%s to telemetry incidents failed", ticket.id)
