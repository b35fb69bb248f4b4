"""SLA pages: the clocks block of a ticket page, the agent's SLA alerts, and the wording of countdowns."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.i18n import translate
from zhiban.sla import service
from zhiban.tickets import service as tickets
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import TicketId
from zhiban.web.scopes import by_method
from zhiban.web.templating import render, templates

router = APIRouter(include_in_schema=False, dependencies=[by_method("tickets:read", "tickets:write")])


@router.get("/agent/queue", response_class=HTMLResponse)
def queue(request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> Response:
    """The agent queue: open tickets, most urgent SLA first."""
    principal.require_staff()
    items = service.queue_order(session, principal, limit=200, clock=clock)
    return render(
        request,
        "queue.html",
        tickets=[item.ticket for item in items],  # with their organization's name, read in the same query
        badges={item.ticket.id: item.badge for item in items},
        open_count=service.cached_open_count(session, principal, tickets.count_open),
    )


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def due_words(moment: datetime, lang: str, tz: str, now: datetime | None = None) -> str:
    """ "Thu 09:50" in the viewer's zone (with the date when it is a week or more away)."""
    local = moment.astimezone(_zone(tz))
    day = translate(lang, f"sla.weekday.{local.weekday()}")
    if now is not None and abs(moment - now) >= timedelta(days=6):
        return f"{local:%m-%d} {day} {local:%H:%M}"
    return f"{day} {local:%H:%M}"


def span_words(span: timedelta, lang: str, business: bool) -> str:
    """A duration the way a person reads it: business hours for business targets, else d/h/min."""
    minutes = max(int(abs(span).total_seconds() // 60), 0)
    if business:
        hours = minutes // 60
        if hours == 1:
            return translate(lang, "sla.unit.business_hour")
        if hours >= 1:
            return translate(lang, "sla.unit.business_hours", n=hours)
        return translate(lang, "sla.unit.business_minutes", n=minutes)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(translate(lang, "sla.unit.d", n=days))
    if hours:
        parts.append(translate(lang, "sla.unit.h", n=hours))
    if mins and not days:
        parts.append(translate(lang, "sla.unit.m", n=mins))
    return " ".join(parts) or translate(lang, "sla.unit.m", n=0)


def badge_words(badge: service.Badge | None, lang: str, tz: str) -> str:
    """ "2 business hours left, due Thu 09:50" / "剩余 2 个工作小时，截止 周四 09:50" / "overdue by 20 min (…)"."""
    if badge is None:
        return ""
    now = badge.due_at - badge.left if not badge.business else None
    due = due_words(badge.due_at, lang, tz, now)
    if badge.left <= timedelta(0) or badge.state == "breached":
        return translate(lang, "sla.overdue", duration=span_words(badge.left, lang, False), due=due)
    key = "sla.left_business" if badge.business else "sla.left"
    return translate(lang, key, duration=span_words(badge.left, lang, badge.business), due=due)


def target_words(minutes: float, lang: str) -> str:
    return span_words(timedelta(minutes=minutes), lang, False)


templates.env.filters["sla_badge"] = badge_words
templates.env.filters["sla_due"] = due_words
templates.env.filters["sla_target"] = target_words


@router.get("/tickets/{ticket_id}/sla", response_class=HTMLResponse)
def ticket_clocks(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> Response:
    """The SLA block of a ticket page (htmx loads and refreshes it)."""
    view = service.ticket_sla(session, principal, clock, ticket_id)
    targets = [service.target_to_json(t) for t in view.targets]
    return render(request, "sla/ticket_clocks.html", sla=view, targets=targets)


@router.get("/agent/sla/notifications")
def notifications() -> RedirectResponse:
    """SLA alerts are notices of the one inbox now: old links land there."""
    return RedirectResponse("/agent/inbox", status_code=303)
