"""SLA timers: a warning at 75 % of a target, a breach just after the due time.

Handlers replay the ticket first (the log decides, not the timer): a timer that fires early re-arms itself
at the clock's new moment; a clock already met or paused makes it a no-op. Notifications are recorded once
per person (a unique key), and their mail queued in notify's outbox, in the transaction that marks the job done.
The registry includes notify's delivery, so a worker for SLA timers also sends their mail (see sla.notices).
"""

from __future__ import annotations

import logging
from typing import Any

from zhiban.core.clock import Clock
from zhiban.engine import JobContext, JobRegistry, PermanentFailure
from zhiban.identity import service as identity
from zhiban.notify import inbox
from zhiban.notify import jobs as notify_jobs
from zhiban.notify import service as notify
from zhiban.sla import notices, service
from zhiban.sla.model import ClockState, Metric
from zhiban.sla.store import ClockRow
from zhiban.tickets import service as tickets

log = logging.getLogger("zhiban.sla")
registry = JobRegistry()
registry.include(notify_jobs.registry)
notify.on_result(notices.record_result)
notify.register_guard(notices.PAGE_SUBJECT, notices.still_unread)
LEGACY_EMAIL_JOB = "sla.email"  # queued by a desk before the one outbox (migration 0004); drop after a release


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
        ticket = tickets.summary(session, ticket_id)
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


@registry.handler(LEGACY_EMAIL_JOB)
def hand_over_legacy_email(ctx: JobContext, payload: dict[str, Any]) -> None:
    """An `sla.email` job left from before the upgrade: its notice's mail goes to notify's outbox."""
    note_id = payload.get("notification_id")
    with ctx.session_factory() as session, session.begin():
        note = inbox.get(session, note_id) if isinstance(note_id, int) else None
        if note is not None and note.ticket_id is not None and note.emailed_at is None and note.email_error is None:
            person, ticket = identity.person(session, note.person_id), tickets.summary(session, note.ticket_id)
            if person is not None and ticket is not None:
                notices.queue_mail(session, ctx.clock, note, person, ticket.subject)
        ctx.finish(session)
