"""Diagnostics for a ticket: the call quality around the time it happened.

With the ticket's RTC fields it narrows to the evidence: the named app only, its channel's (or the named users')
sessions around the time the customer said it happened; without them, every app of the organization in the
hour around the filing."""

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
    """Quality summary of the ticket's app(s) around when it happened (JSON-ready); with a channel or users, that
    channel's quality and its sessions (for the session inspector).

    Acts for the desk (no tenancy check): callers decide who may see it. NotFound if there is no such ticket.
    """
    from zhiban.apps import service as apps
    from zhiban.telemetry import service
    from zhiban.tickets import service as tickets

    view = tickets.get_ticket(session, apps.SYSTEM, ticket_id)
    created = view.ticket.created_at.astimezone(UTC)
    fields = tickets.fields_of(session, [ticket_id]).get(ticket_id)
    occurred = fields.occurred_at.astimezone(UTC) if fields and fields.occurred_at else None
    start, end = diagnostics_window(occurred or created, now)
    channel = fields.channel_name if fields else None
    users = fields.user_ids if fields and not channel else ()
    org_apps = apps.list_apps(session, apps.SYSTEM, view.ticket.organization_id)
    if fields and fields.app_id:  # the app the customer named (still the organization's: checked when set)
        org_apps = [a for a in org_apps if a.app_id == fields.app_id] or org_apps
    found = []
    for app in org_apps[:MAX_APPS]:
        narrowed = channel is not None or bool(users)
        summary = service.summary_to_dict(
            service.quality_summary(
                session,
                app.app_id,
                start,
                end,
                channel=channel,
                user_id=users[0] if len(users) == 1 else None,
                worst=worst,
            )
        )
        sessions = (
            service.sessions_in(session, app.app_id, start, end, channel=channel, user_ids=users) if narrowed else []
        )
        found.append(
            {
                "app_id": app.app_id,
                "name": app.name,
                "overall": summary["overall"].get(app.app_id),
                "worst": summary["worst"],
                "sessions": [s | {"first": s["first"].isoformat(), "last": s["last"].isoformat()} for s in sessions],
            }
        )
    return {
        "ticket_id": ticket_id,
        "organization_id": view.ticket.organization_id,
        "created_at": created.isoformat(),
        "occurred_at": occurred.isoformat() if occurred else None,
        "anchor": "occurred" if occurred else "created",
        "channel_name": channel,
        "user_ids": list(users),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "apps": found,
    }
