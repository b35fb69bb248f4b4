"""Diagnostics for a ticket: the call quality of its organization's apps around the time it was filed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

BEFORE: Final = timedelta(hours=1)
AFTER: Final = timedelta(hours=1)
MAX_APPS: Final = 20


def diagnostics_window(created_at: datetime, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[created − 1 h, created + 1 h), cut at `now` while that hour is still running (never empty)."""
    start = created_at - BEFORE
    end = created_at + AFTER
    if now is not None:
        end = max(min(end, now), created_at + timedelta(seconds=10))
    return start, end


def ticket_diagnostics(
    session: Session, ticket_id: int, *, now: datetime | None = None, worst: int = 5
) -> dict[str, Any]:
    """Quality summary of each app of the ticket's organization around the ticket's creation (JSON-ready).

    Acts for the desk (no tenancy check): callers decide who may see it. NotFound if there is no such ticket.
    """
    from zhiban.apps import service as apps
    from zhiban.telemetry import service
    from zhiban.tickets import service as tickets

    view = tickets.get_ticket(session, apps.SYSTEM, ticket_id)
    created = view.ticket.created_at.astimezone(UTC)
    start, end = diagnostics_window(created, now)
    found = []
    for app in apps.list_apps(session, apps.SYSTEM, view.ticket.organization_id)[:MAX_APPS]:
        summary = service.summary_to_dict(service.quality_summary(session, app.app_id, start, end, worst=worst))
        found.append(
            {
                "app_id": app.app_id,
                "name": app.name,
                "overall": summary["overall"].get(app.app_id),
                "worst": summary["worst"],
            }
        )
    return {
        "ticket_id": ticket_id,
        "organization_id": view.ticket.organization_id,
        "created_at": created.isoformat(),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "apps": found,
    }
