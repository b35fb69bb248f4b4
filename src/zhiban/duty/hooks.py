"""On duty follows tickets (filed, raised, urgent, solved) and their incidents (paged, acknowledged, resolved);
the agent's inbox hears of new tickets, assignments and pages (duty.notices)."""

from __future__ import annotations

from zhiban.duty import notices, service
from zhiban.incidents import events as incident_events
from zhiban.tickets import events as ticket_events

ticket_events.subscribe(service.on_ticket_change)
incident_events.subscribe(service.on_incident_change)
ticket_events.subscribe(notices.on_ticket_change)
ticket_events.on_routed(notices.on_routed)
incident_events.subscribe_many(notices.on_incident_changes)
