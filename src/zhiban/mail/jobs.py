"""Ticket mail is sent by notify's delivery job; this registry includes it, and the outbound rows follow it.

The support mailboxes are read by their poll jobs: each run reads one mailbox (and waits in IDLE for more),
then queues that mailbox's next run in the transaction that finishes it, so one worker somewhere always owns it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from zhiban.engine import JobContext, JobRegistry, PermanentFailure
from zhiban.features import load_hooks
from zhiban.mail import imap_poll, mailboxes, store
from zhiban.mail.service import current_settings, hand_to_outbox, record_result
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


@registry.handler(mailboxes.POLL_JOB)
def poll_mailbox(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Read one support mailbox, then queue its next poll (none once it is removed or a newer poll took over)."""
    mailbox_id, seq = payload.get("mailbox"), payload.get("seq")
    if not isinstance(mailbox_id, str) or not isinstance(seq, int):
        raise PermanentFailure(f"bad payload {payload!r}")
    load_hooks()  # a ticket filed by mail starts its SLA clocks, triage... in a bare worker too
    result = imap_poll.poll(
        ctx.session_factory,
        ctx.clock,
        mailbox_id,
        settings=current_settings(),
        keep_going=ctx.heartbeat,
        idle_window=imap_poll.IDLE_WINDOW,
    )
    with ctx.session_factory() as session, session.begin():
        if result.again_in is not None:
            mailboxes.next_poll(session, ctx.clock, mailbox_id, seq, max(result.again_in, timedelta(0)))
        ctx.finish(session)
