"""On-call jobs: the daily look two weeks ahead for holes in every schedule, and the owner's e-mail about them.

The check records its notices and queues tomorrow's check in the transaction that marks it done, so a
crash repeats the check and never loses or doubles a notice (one notice per hole: see the service).
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.core.i18n import translate
from zhiban.core.settings import get_settings
from zhiban.engine import JobContext, JobRegistry, PermanentFailure, enqueue
from zhiban.identity.store import PersonRow
from zhiban.notify import Destination, Message, PermanentDeliveryError
from zhiban.notify.channels.email import EmailChannel, parse_smtp_url
from zhiban.notify.config import EmailConfig
from zhiban.notify.model import Language
from zhiban.oncall import service
from zhiban.oncall.store import GapNoticeRow, ScheduleRow

log = logging.getLogger("zhiban.oncall")
registry = JobRegistry()
MAX_NOTICES_PER_MAIL = 50


@registry.handler(service.GAP_CHECK_JOB)
def gap_check(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Record a notice per new hole in the next 14 days, mail each owner once, queue tomorrow's check."""
    with ctx.session_factory() as session, session.begin():
        made = service.record_gap_notices(session, ctx.clock)
        by_owner: dict[tuple[str, str], list[int]] = {}
        for note in made:
            by_owner.setdefault((note.schedule_id, note.person_id), []).append(note.id)
        for (schedule_id, person_id), ids in by_owner.items():
            first = ids[0]
            enqueue(
                session,
                service.GAP_EMAIL_JOB,
                {"notice_ids": ids[:MAX_NOTICES_PER_MAIL]},
                due_at=ctx.clock.now(),
                dedup_key=f"{service.GAP_EMAIL_JOB}:{first}",
            )
            log.info("on-call gaps: %d new hole(s) in schedule %s for %s", len(ids), schedule_id, person_id)
        service.schedule_next_gap_check(session, ctx.clock)
        ctx.finish(session)


def mailer(clock: Clock) -> EmailChannel:
    """The desk's SMTP channel (ZHIBAN_SMTP_URL); without a URL the mail is only logged."""
    url = get_settings().smtp_url
    return EmailChannel(parse_smtp_url(url) if url else None, clock)


def _compose(notes: list[GapNoticeRow], schedules: dict[str, str], person: PersonRow) -> Message:
    lang: Language = "zh" if person.language == "zh" else "en"
    try:
        zone = ZoneInfo(person.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    lines = [
        translate(
            lang,
            "oncall.mail.gap.line",
            schedule=schedules.get(n.schedule_id, n.schedule_id),
            start=n.start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            end=n.end.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            zone=zone.key,
        )
        for n in notes
    ]
    link = f"{get_settings().base_url.rstrip('/')}/oncall"
    name = schedules.get(notes[0].schedule_id, "")
    return Message(
        subject=translate(lang, "oncall.mail.gap.subject", schedule=name, count=len(notes))[:300],
        text=translate(lang, "oncall.mail.gap.body") + "\n\n" + "\n".join(lines) + f"\n\n{link}\n",
        idempotency_key=f"oncall-gap-{notes[0].id}",
        language=lang,
        event="oncall.gap",
        metadata={"schedule_id": notes[0].schedule_id},
    )


def _notice_ids(payload: dict[str, Any]) -> list[int]:
    try:
        ids = [int(i) for i in payload["notice_ids"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"bad payload {payload!r}") from exc
    if not ids or len(ids) > MAX_NOTICES_PER_MAIL:
        raise PermanentFailure(f"bad payload {payload!r}")
    return ids


@registry.handler(service.GAP_EMAIL_JOB)
def gap_email(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail the owner the holes not yet mailed; a temporary SMTP failure is retried by the engine."""
    ids = _notice_ids(payload)
    with ctx.session_factory() as session, session.begin():
        query = select(GapNoticeRow).where(GapNoticeRow.id.in_(ids), GapNoticeRow.emailed_at.is_(None))
        notes = list(session.scalars(query.order_by(GapNoticeRow.start)))
        person = session.get(PersonRow, notes[0].person_id) if notes else None
        if not notes or person is None or not person.active:
            ctx.finish(session)
            return
        schedule_ids = {n.schedule_id for n in notes}
        names = select(ScheduleRow.id, ScheduleRow.name).where(ScheduleRow.id.in_(schedule_ids))
        schedules = {schedule_id: name for schedule_id, name in session.execute(names)}
        message = _compose(notes, schedules, person)
        email = person.email
    error: str | None = None
    try:
        mailer(ctx.clock).send(message, Destination("email", EmailConfig(to=[email]), name="oncall"))
    except (PermanentDeliveryError, ValidationError, InvalidInput) as exc:
        error = str(exc)[:500]  # retrying cannot help: keep the reason on the notices
    with ctx.session_factory() as session, session.begin():
        for note in session.scalars(select(GapNoticeRow).where(GapNoticeRow.id.in_(ids))):
            if error is None:
                note.emailed_at = ctx.clock.now()
            else:
                note.email_error = error
        ctx.finish(session)
