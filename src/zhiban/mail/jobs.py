"""Ticket mail is sent by notify's delivery job; this registry includes it, and the outbound rows follow it."""

from __future__ import annotations

from typing import Any

from zhiban.engine import JobContext, JobRegistry
from zhiban.mail import store
from zhiban.mail.service import hand_to_outbox, record_result
from zhiban.notify import jobs as notify_jobs
from zhiban.notify import service as notify

LEGACY_SEND_JOB = "mail.send"  # queued by a desk before the one outbox (migration 0004); drop after a release

registry = JobRegistry()
registry.include(notify_jobs.registry)
notify.on_result(record_result)


@registry.handler(LEGACY_SEND_JOB)
def hand_over_legacy_send(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A `mail.send` job left from before the upgrade: its still-queued mail goes to notify's outbox."""
    mail_id = payload.get("mail_id")
    with ctx.session_factory() as session, session.begin():
        row = session.get(store.MailMessageRow, mail_id) if isinstance(mail_id, int) else None
        if row is not None and row.direction == store.OUTBOUND and row.state == store.QUEUED:
            hand_to_outbox(session, ctx.clock, row)
        ctx.finish(session)
