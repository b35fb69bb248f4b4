"""SLA timers: a warning at 75 % of a target, a breach just after the due time, and the e-mails they send.

Handlers replay the ticket first (the log decides, not the timer): a timer that fires early re-arms itself
at the clock's new moment; a clock already met or paused makes it a no-op. Notifications are recorded once
per person (a unique key), in the same transaction that marks the job done.
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.core.i18n import translate
from zhiban.core.settings import get_settings
from zhiban.engine import JobContext, JobRegistry, PermanentFailure
from zhiban.identity.store import PersonRow
from zhiban.notify import Destination, Message, PermanentDeliveryError
from zhiban.notify.channels.email import EmailChannel, parse_smtp_url
from zhiban.notify.config import EmailConfig
from zhiban.notify.model import Language
from zhiban.sla import service
from zhiban.sla.model import ClockState, Metric
from zhiban.sla.store import ClockRow, NotificationRow
from zhiban.tickets.store import TicketRow

log = logging.getLogger("zhiban.sla")
registry = JobRegistry()


def _timer_payload(payload: dict[str, Any]) -> tuple[int, str, int]:
    try:
        ticket_id, metric, cycle = int(payload["ticket_id"]), str(payload["metric"]), int(payload["cycle"])
        Metric(metric)
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"bad SLA timer payload {payload!r}") from exc
    return ticket_id, metric, cycle


def _is_due(row: ClockRow, kind: str, clock: Clock) -> bool:
    if kind == "warning":
        return row.state == ClockState.ACTIVE.value and row.warning_at is not None and row.warning_at <= clock.now()
    return row.state == ClockState.BREACHED.value and row.fulfilled_at is None


def fire(ctx: JobContext, payload: dict[str, Any], kind: str) -> None:
    """Re-check the clock from the log; notify if the warning or breach really is due."""
    ticket_id, metric, cycle = _timer_payload(payload)
    with ctx.session_factory() as session, session.begin():
        ticket = session.get(TicketRow, ticket_id)
        if ticket is not None:
            service.recompute_ticket(session, ctx.clock, ticket, "timer")
            row = session.get(ClockRow, (ticket_id, metric, cycle))
            if row is not None and _is_due(row, kind, ctx.clock):
                made = service.notify(session, ctx.clock, ticket, row, kind)
                log.info("SLA %s on ticket #%d %s: %d notification(s)", kind, ticket_id, metric, len(made))
        ctx.finish(session)


@registry.handler(service.WARNING_JOB)
def on_warning(ctx: JobContext, payload: dict[str, Any]) -> None:
    fire(ctx, payload, "warning")


@registry.handler(service.BREACH_JOB)
def on_breach(ctx: JobContext, payload: dict[str, Any]) -> None:
    fire(ctx, payload, "breach")


def mailer(clock: Clock) -> EmailChannel:
    """The desk's SMTP channel (ZHIBAN_SMTP_URL); without a URL mail is only logged."""
    url = get_settings().smtp_url
    return EmailChannel(parse_smtp_url(url) if url else None, clock)


def _compose(session: Session, note: NotificationRow, person: PersonRow) -> Message:
    ticket = session.get(TicketRow, note.ticket_id)
    lang: Language = "zh" if person.language == "zh" else "en"
    try:
        zone = ZoneInfo(person.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    due = note.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") + f" ({zone.key})" if note.due_at else "-"
    values = {
        "id": note.ticket_id,
        "subject": ticket.subject if ticket else "",
        "metric": translate(lang, f"sla.metric.{note.metric}"),
        "due": due,
        "level": translate(lang, f"sla.level.{note.level}"),
    }
    link = f"{get_settings().base_url.rstrip('/')}/tickets/{note.ticket_id}"
    subject = translate(lang, f"sla.mail.{note.kind}.subject", **values)
    text = translate(lang, f"sla.mail.{note.kind}.body", **values) + f"\n\n{link}\n"
    return Message(
        subject=subject[:300],
        text=text,
        idempotency_key=f"sla-notification-{note.id}",
        language=lang,
        event=f"sla.{note.kind}",
        metadata={"ticket_id": note.ticket_id, "metric": note.metric},
    )


@registry.handler(service.EMAIL_JOB)
def send_email(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail one SLA notification to its person; a temporary failure is retried by the engine."""
    try:
        note_id = int(payload["notification_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"bad payload {payload!r}") from exc
    with ctx.session_factory() as session, session.begin():
        note = session.get(NotificationRow, note_id)
        person = session.get(PersonRow, note.person_id) if note is not None else None
        if note is None or person is None or note.emailed_at is not None:
            ctx.finish(session)
            return
        message = _compose(session, note, person)
        email = person.email
    error: str | None = None
    try:
        destination = Destination("email", EmailConfig(to=[email]), name="sla")
        mailer(ctx.clock).send(message, destination)
    except (PermanentDeliveryError, ValidationError, InvalidInput) as exc:
        error = str(exc)[:500]  # retrying cannot help: keep the reason on the notification
    with ctx.session_factory() as session, session.begin():
        note = session.get(NotificationRow, note_id)
        if note is not None:
            if error is None:
                note.emailed_at = ctx.clock.now()
            else:
                note.email_error = error
        ctx.finish(session)
