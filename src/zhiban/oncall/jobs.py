"""On-call jobs: the daily look two weeks ahead for holes in every schedule, and the owner's e-mail about them.

The check records its notices, queues the owners' mail in notify's outbox and tomorrow's check in the
transaction that marks it done, so a crash repeats the check and never loses or doubles a notice (one
notice per hole: see the service). The registry includes notify's delivery, which sends that mail.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from zhiban.engine import JobContext, JobRegistry
from zhiban.notify import jobs as notify_jobs
from zhiban.notify import service as notify
from zhiban.oncall import gap_mail, service
from zhiban.oncall.store import GapNoticeRow

log = logging.getLogger("zhiban.oncall")
registry = JobRegistry()
registry.include(notify_jobs.registry)
notify.on_result(gap_mail.record_result)
LEGACY_EMAIL_JOB = "oncall.gap_email"  # queued by a desk before the one outbox (migration 0004); drop after a release


@registry.handler(service.GAP_CHECK_JOB)
def gap_check(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Record a notice per new hole in the next 14 days, mail each owner once, queue tomorrow's check."""
    with ctx.session_factory() as session, session.begin():
        made = service.record_gap_notices(session, ctx.clock)
        by_owner: dict[tuple[str, str], list[GapNoticeRow]] = {}
        for note in made:
            by_owner.setdefault((note.schedule_id, note.person_id), []).append(note)
        for (schedule_id, person_id), notes in by_owner.items():
            gap_mail.queue_mail(session, ctx.clock, notes)
            log.info("on-call gaps: %d new hole(s) in schedule %s for %s", len(notes), schedule_id, person_id)
        service.schedule_next_gap_check(session, ctx.clock)
        ctx.finish(session)


@registry.handler(LEGACY_EMAIL_JOB)
def hand_over_legacy_email(ctx: JobContext, payload: dict[str, Any]) -> None:
    """An `oncall.gap_email` job left from before the upgrade: its notices not yet mailed go to notify's outbox."""
    ids = payload.get("notice_ids")
    wanted = [i for i in ids if isinstance(i, int)][: gap_mail.MAX_NOTICES_PER_MAIL] if isinstance(ids, list) else []
    with ctx.session_factory() as session, session.begin():
        query = select(GapNoticeRow).where(
            GapNoticeRow.id.in_(wanted), GapNoticeRow.emailed_at.is_(None), GapNoticeRow.email_error.is_(None)
        )
        notes = list(session.scalars(query))
        if notes:
            gap_mail.queue_mail(session, ctx.clock, notes)
        ctx.finish(session)
