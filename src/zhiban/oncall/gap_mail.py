"""The owner's mail about holes in a schedule, queued through notify's outbox; its fate is stamped on the notices.

One mail per schedule and owner for the holes a check found (at most MAX_NOTICES_PER_MAIL); the notify message
is about the first notice (subject "oncall_gap") and names all of them, so `record_result` can stamp each one.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.core.i18n import translate
from zhiban.core.settings import Settings, SettingsSource
from zhiban.identity import service as identity
from zhiban.identity.model import Person
from zhiban.notify import outbox
from zhiban.notify.model import Language, Message, MessageOutcome
from zhiban.oncall.store import GapNoticeRow, ScheduleRow

SUBJECT = "oncall_gap"
MAX_NOTICES_PER_MAIL = 50
# The desk's portal link, read at each use from the settings oncall.hooks hands over.
current_settings: SettingsSource[Settings] = SettingsSource("zhiban.oncall.hooks")


def compose(notes: list[GapNoticeRow], schedules: dict[str, str], person: Person) -> Message:
    """The mail listing the holes, in the owner's language and time zone."""
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
    link = f"{current_settings().base_url.rstrip('/')}/oncall"
    name = schedules.get(notes[0].schedule_id, "")
    return Message(
        subject=translate(lang, "oncall.mail.gap.subject", schedule=name, count=len(notes))[:300],
        text=translate(lang, "oncall.mail.gap.body") + "\n\n" + "\n".join(lines) + f"\n\n{link}\n",
        idempotency_key=f"oncall-gap-{notes[0].id}",
        language=lang,
        event="oncall.gap",
        metadata={"schedule_id": notes[0].schedule_id, "notices": ",".join(str(n.id) for n in notes)},
    )


def queue_mail(session: Session, clock: Clock, notes: list[GapNoticeRow]) -> None:
    """Queue the owner's mail about these notices (one schedule, one owner) in the caller's transaction."""
    notes = sorted(notes, key=lambda n: n.start)[:MAX_NOTICES_PER_MAIL]
    person = identity.person(session, notes[0].person_id) if notes else None
    if not notes or person is None or not person.active:
        return
    names = select(ScheduleRow.id, ScheduleRow.name).where(ScheduleRow.id.in_({n.schedule_id for n in notes}))
    schedules = {schedule_id: name for schedule_id, name in session.execute(names)}
    try:
        outbox.queue_email(
            session,
            clock,
            message=compose(notes, schedules, person),
            to=person.email,
            subject_kind=SUBJECT,
            subject_id=notes[0].id,
            person_id=person.id,
        )
    except (InvalidInput, ValidationError) as exc:
        for note in notes:
            note.email_error = str(exc)[:500]  # sending cannot help: keep the reason on the notices


def record_result(session: Session, clock: Clock, row: MessageOutcome) -> None:
    """notify listener: the notices of a sent mail get emailed_at, those of a failed one email_error."""
    if row.subject_kind != SUBJECT or row.state not in ("sent", "failed"):
        return
    named = str(row.metadata.get("notices", ""))
    ids = [int(part) for part in named.split(",") if part.isdigit()] or [int(row.subject_id)]
    for note in session.scalars(select(GapNoticeRow).where(GapNoticeRow.id.in_(ids))):
        if row.state == "sent":
            note.emailed_at = row.sent_at or clock.now()
        else:
            note.email_error = (row.last_error or "failed")[:500]
