"""Detection's subscriptions: closed telemetry windows feed the detector; tickets filed during a
telemetry incident are linked to it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.detect.live import windows_closed
from zhiban.detect.tickets import link_to_open_incidents
from zhiban.telemetry.pipeline import on_windows_closed
from zhiban.tickets import events
from zhiban.tickets.model import EventKind, TicketChange, TicketRef

log = logging.getLogger("zhiban.detect")

on_windows_closed(windows_closed)


def link_filed_tickets(session: Session, clock: Clock, changes: Sequence[TicketChange]) -> None:
    """Tickets filed while their organization suffers a telemetry incident are linked to it (after filing,
    in batches; triage follows later in the same batch, so its priority sees the link)."""
    by_org: dict[str, list[TicketRef]] = {}
    for change in changes:
        by_org.setdefault(change.ticket.organization_id, []).append(change.ticket)
    for tickets in by_org.values():
        link_to_open_incidents(session, tickets)


events.follow("detect.incident_links", link_filed_tickets, kinds={EventKind.CREATED})
