"""SLA notices by mail (and, for the engineer on call at night, by their paging channels) through notify's outbox.

The notice is a row of notify's in-app inbox (kind sla_warning or sla_breach) that a person reads and marks read;
the mail itself is a notify message about it (subject "sla_notification", the inbox row's id), and
`record_result` stamps its fate back on the notice.

Out of the customer's business hours, a notice to the person on call for a ticket the plan pages for also goes
through that person's paging rules (SMS, voice, IM, ...; `queue_pages`, subject "sla_page"): mail and an in-app
line wake nobody. A rule's delay is kept, and a message still waiting when the notice is read is not sent
(`still_unread`, notify's guard): reading the notice is what acknowledging is to a page.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.core.i18n import translate
from zhiban.core.settings import Settings, SettingsSource
from zhiban.identity.model import Person
from zhiban.notify import inbox, outbox
from zhiban.notify import service as notify
from zhiban.notify.model import Language, Message, MessageOutcome, Notice

SUBJECT = "sla_notification"
PAGE_SUBJECT = "sla_page"  # a notice's messages through the on-call person's paging rules (subject id: the notice)
PAGE_URGENCY = "high"  # the urgency of the page the ticket itself would make (zhiban.duty pages high)
# The desk's portal link, read at each use from the settings sla.hooks hands over.
current_settings: SettingsSource[Settings] = SettingsSource("zhiban.sla.hooks")


def _kind(note: Notice) -> str:
    return note.kind.removeprefix("sla_")  # warning | breach


def compose(note: Notice, person: Person, subject: str) -> Message:
    """The notice's mail, in the person's language, with the due time in their zone."""
    lang: Language = "zh" if person.language == "zh" else "en"
    try:
        zone = ZoneInfo(person.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    due = note.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") + f" ({zone.key})" if note.due_at else "-"
    values = {
        "id": note.ticket_id,
        "subject": subject,
        "metric": translate(lang, f"sla.metric.{note.data.get('metric')}"),
        "due": due,
        "level": translate(lang, f"sla.level.{note.reason}"),
    }
    link = f"{current_settings().base_url.rstrip('/')}/tickets/{note.ticket_id}"
    kind = _kind(note)
    subject = translate(lang, f"sla.mail.{kind}.subject", **values)
    text = translate(lang, f"sla.mail.{kind}.body", **values) + f"\n\n{link}\n"
    return Message(
        subject=subject[:300],
        text=text,
        idempotency_key=f"sla-notification-{note.id}",
        language=lang,
        event=f"sla.{kind}",
        metadata={"ticket_id": note.ticket_id, "metric": note.data.get("metric"), "level": note.reason},
    )


def queue_mail(session: Session, clock: Clock, note: Notice, person: Person, subject: str) -> None:
    """Queue the notice's mail in the caller's transaction; a mail that cannot be made is noted on the notice."""
    try:
        outbox.queue_email(
            session,
            clock,
            message=compose(note, person, subject),
            to=person.email,
            subject_kind=SUBJECT,
            subject_id=note.id,
            person_id=person.id,
            ticket_id=note.ticket_id,
        )
    except (InvalidInput, ValidationError) as exc:
        inbox.stamp_mail(session, note.id, error=str(exc))  # sending cannot help: keep the reason on the notice


def record_result(session: Session, clock: Clock, row: MessageOutcome) -> None:
    """notify listener: a mailed notice gets its emailed_at, a failed one its email_error."""
    if row.subject_kind != SUBJECT or row.state not in ("sent", "failed"):
        return
    if row.state == "sent":
        inbox.stamp_mail(session, int(row.subject_id), sent_at=row.sent_at or clock.now())
    else:
        inbox.stamp_mail(session, int(row.subject_id), error=row.last_error or "failed")


def queue_pages(session: Session, clock: Clock, note: Notice, person: Person, subject: str) -> int:
    """Queue the notice through each of the person's paging rules (once per notice and contact method); how many
    were new. The notice's mail already goes to the person's own address: a rule that mails it there is skipped."""
    message = compose(note, person, subject)
    link = message.text.strip().splitlines()[-1]
    # The ticket's subject too: a drill's ticket says "[DRILL 演练]" there, which the SMS must carry.
    about = " ".join(subject.split())[:100]
    now = clock.now()
    queued = 0
    for rule, method in notify.paging_rules(session, person.id, PAGE_URGENCY):
        if rule.channel == "email" and method.config.get("to") in (person.email, [person.email]):
            continue
        page = Message(
            subject=message.subject,
            text=message.text,
            idempotency_key=f"sla-page-{note.id}-{method.id}",
            language=message.language,
            short_text=f"{message.subject} · {about} {link}"[:1_600],
            spoken_text=f"{message.subject}. {about}"[:4_000],
            event=f"{message.event}.page",
            metadata=message.metadata,
        )
        try:
            _, new = notify.queue_message(
                session,
                clock,
                message=page,
                subject_kind=PAGE_SUBJECT,
                subject_id=str(note.id),
                channel=rule.channel,
                config=dict(method.config),
                due_at=now + timedelta(minutes=rule.delay_minutes),
                person_id=person.id,
                contact_method_id=method.id,
                ticket_id=note.ticket_id,
            )
        except (InvalidInput, ValidationError):
            continue  # a contact method the channel now refuses: the mail and the in-app notice still go
        queued += int(new)
    return queued


def still_unread(session: Session, notice_id: str) -> bool:
    """notify guard of "sla_page": a page still waiting (a rule's delay) is wanted while its notice is unread."""
    note = inbox.get(session, int(notice_id)) if notice_id.isdigit() else None
    return note is not None and note.read_at is None
