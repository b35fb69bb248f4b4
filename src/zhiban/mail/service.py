"""Use cases of ticket mail: file or thread a received mail, queue and send the desk's mail to customers."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound, TooLarge
from zhiban.core.i18n import translate
from zhiban.core.settings import Settings
from zhiban.engine import JobContext, PermanentFailure, enqueue
from zhiban.identity.model import Principal, Role
from zhiban.identity.service import person_with_email as person_by_email
from zhiban.identity.service import principal_of
from zhiban.mail import store
from zhiban.mail.model import (
    MAX_INBOUND_BYTES,
    InboundMail,
    bounded_body,
    compose_text,
    inbound_message_id,
    outbound_subject,
    parse_mail,
    sent_references,
    ticket_subject,
    ticket_token,
    trim_quoted,
)
from zhiban.mail.store import MailMessageRow
from zhiban.notify import Destination, Link, Message, PermanentDeliveryError, RetryableDeliveryError
from zhiban.notify.channels.email import EmailChannel, parse_smtp_url
from zhiban.notify.config import EmailConfig
from zhiban.notify.model import Language
from zhiban.store.db import transaction
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel, Status, TicketRef

log = logging.getLogger("zhiban.mail")

SEND_JOB = "mail.send"
MAX_MAIL_TEXT = 30_000  # notify.Message holds 32,000 characters; the rest is in the portal
# Reads tickets on the desk's behalf when it writes to a customer (never used to write).
_DESK = Principal(person_id="desk", role=Role.AGENT, organization_id=None, name="zhiban")

Action = Literal["created", "replied", "ignored", "duplicate"]


@dataclass(frozen=True)
class Outcome:
    """What became of one received mail that was accepted."""

    action: Action
    ticket_id: int | None
    reason: str

    @property
    def smtp_reply(self) -> str:
        """The SMTP answer for it: always 250, so machines that wrote it do not retry or bounce."""
        where = f" (ticket #{self.ticket_id})" if self.ticket_id is not None else ""
        return f"250 2.0.0 {self.action}{where}"


# --- inbound ----------------------------------------------------------------------------------


def receive_mail(
    session: Session, clock: Clock, raw: bytes, *, envelope_sender: str | None, settings: Settings
) -> Outcome:
    """File a customer's mail as a new ticket or a reply; raises TooLarge, InvalidInput or Forbidden to refuse it."""
    if len(raw) > MAX_INBOUND_BYTES:
        raise TooLarge(f"message of {len(raw)} bytes is larger than {MAX_INBOUND_BYTES}")
    mail = parse_mail(raw, envelope_sender)
    if mail.auto_reason is not None:
        log.info("inbound mail ignored: %s (from %s, subject %r)", mail.auto_reason, mail.sender, mail.subject[:80])
        return Outcome("ignored", None, mail.auto_reason)
    message_id = mail.message_id or inbound_message_id(raw)
    seen = store.by_message_id(session, message_id)
    if seen is not None:
        log.info("inbound mail %s already received for ticket #%s; ignored", message_id, seen.ticket_id)
        return Outcome("duplicate", seen.ticket_id, "already received")
    person = person_by_email(session, mail.sender)
    if person is None or not person.active or person.role != Role.CUSTOMER or person.organization_id is None:
        log.warning("inbound mail refused: %s is not a customer user of this desk", mail.sender)
        raise Forbidden("the sender is not a customer user of this desk")
    principal = principal_of(person)
    ticket_id = _thread_target(session, principal, mail)
    if ticket_id is not None:
        comment = tickets.add_comment(
            session, clock, principal, ticket_id, body=bounded_body(trim_quoted(mail.text)), public=True
        )
        _record_inbound(session, clock, ticket_id, message_id, comment.id, mail.sender)
        log.info("inbound mail from %s added to ticket #%s", mail.sender, ticket_id)
        return Outcome("replied", ticket_id, "threaded")
    ticket = tickets.create_ticket(
        session,
        clock,
        principal,
        subject=ticket_subject(mail.subject),
        body=bounded_body(mail.text.strip()),
        channel=Channel.EMAIL,
    )
    first = tickets.get_ticket(session, _DESK, ticket.id).comments[0]
    _record_inbound(session, clock, ticket.id, message_id, first.id, mail.sender)
    _queue(session, clock, ticket.id, "confirmation", None, person.email, settings)
    log.info("inbound mail from %s filed as ticket #%s", mail.sender, ticket.id)
    return Outcome("created", ticket.id, "new ticket")


def _thread_target(session: Session, principal: Principal, mail: InboundMail) -> int | None:
    """The open ticket this mail answers, found by its headers, then by its subject tag, within the sender's tenant."""
    known = store.tickets_of_message_ids(session, mail.thread_ids())
    candidates = [known[mid] for mid in mail.thread_ids() if mid in known]
    token = ticket_token(mail.subject)
    if token is not None:
        candidates.append(token)
    for ticket_id in dict.fromkeys(candidates):
        try:
            view = tickets.get_ticket(session, principal, ticket_id)
        except NotFound:
            # Another tenant's ticket, or none: the mail never reaches it (and learns nothing about it).
            log.warning("inbound mail from %s names ticket #%s outside its organization", mail.sender, ticket_id)
            continue
        if view.ticket.status == Status.CLOSED:
            log.info("inbound mail from %s answers closed ticket #%s: filed as a new ticket", mail.sender, ticket_id)
            continue
        return ticket_id
    return None


def _record_inbound(
    session: Session, clock: Clock, ticket_id: int, message_id: str, comment_id: int, sender: str
) -> None:
    session.add(
        MailMessageRow(
            ticket_id=ticket_id,
            message_id=message_id,
            direction=store.INBOUND,
            comment_id=comment_id,
            address=sender,
            purpose="customer",
            thread_refs="",
            state=store.RECEIVED,
            created_at=clock.now(),
        )
    )
    session.flush()


# --- outbound ---------------------------------------------------------------------------------


def mail_domain(settings: Settings) -> str:
    """The domain of the desk's Message-IDs: the SMTP sender's, else the portal's host."""
    if settings.smtp_url:
        try:
            return parse_smtp_url(settings.smtp_url).from_address.rpartition("@")[2] or "localhost"
        except InvalidInput:
            pass
    return urlsplit(settings.base_url).hostname or "localhost"


def _new_message_id(ticket_id: int, domain: str) -> str:
    # Random, so that a Message-ID cannot be guessed to thread into someone else's ticket.
    return f"<zhiban.{ticket_id}.{secrets.token_hex(12)}@{domain}>"


def _queue(
    session: Session,
    clock: Clock,
    ticket_id: int,
    purpose: str,
    comment_id: int | None,
    recipient: str,
    settings: Settings,
) -> MailMessageRow:
    """Record an outbound mail (its Message-ID joins the thread now) and enqueue its sending, once."""
    dedup_key = f"mail:{purpose}:{comment_id if comment_id is not None else ticket_id}"
    existing = store.by_dedup_key(session, dedup_key)
    if existing is not None:
        return existing
    row = MailMessageRow(
        ticket_id=ticket_id,
        message_id=_new_message_id(ticket_id, mail_domain(settings)),
        direction=store.OUTBOUND,
        comment_id=comment_id,
        address=recipient,
        purpose=purpose,
        dedup_key=dedup_key,
        thread_refs=" ".join(sent_references(store.thread_of(session, ticket_id))),
        state=store.QUEUED,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    enqueue(session, SEND_JOB, {"mail_id": row.id}, due_at=clock.now(), dedup_key=dedup_key)
    return row


def queue_agent_reply(
    session: Session,
    clock: Clock,
    ticket: TicketRef,
    *,
    author_id: str | None,
    comment_id: int | None,
    settings: Settings,
) -> MailMessageRow | None:
    """Queue the mail that carries an agent's public reply to the requester (idempotent per comment)."""
    view = tickets.get_ticket(session, _DESK, ticket.id)
    if comment_id is None:
        # The agent_reply event does not name its comment: it is the author's latest public one.
        public = [c for c in view.comments if c.public and c.author_id == author_id]
        if not public:
            log.warning("agent_reply on ticket #%s without a public comment by %s", ticket.id, author_id)
            return None
        comment_id = public[-1].id
    return _queue(session, clock, ticket.id, "reply", comment_id, view.requester.email, settings)


def _compose(session: Session, row: MailMessageRow, settings: Settings) -> tuple[Message, Destination]:
    view = tickets.get_ticket(session, _DESK, row.ticket_id)
    language: Language = "zh" if view.requester.language == "zh" else "en"
    url = f"{settings.base_url.rstrip('/')}/tickets/{row.ticket_id}"
    label = translate(language, "mail.view_ticket", id=row.ticket_id)
    hint = translate(language, "mail.reply_hint", id=row.ticket_id)
    if row.purpose == "reply":
        comment = next((c for c in view.comments if c.id == row.comment_id), None)
        if comment is None:
            raise PermanentDeliveryError("email", f"comment {row.comment_id} of ticket #{row.ticket_id} is gone")
        body = comment.body
    else:
        body = translate(language, "mail.confirmation", id=row.ticket_id, subject=view.ticket.subject)
    if len(body) > MAX_MAIL_TEXT:
        body = body[:MAX_MAIL_TEXT] + "\n[…]"
    message = Message(
        subject=outbound_subject(row.ticket_id, view.ticket.subject),
        text=compose_text(body, label, url, hint),
        idempotency_key=row.dedup_key or f"mail:{row.id}",
        language=language,
        links=(Link("ticket", url, label[:80]),),
        event=f"ticket.{row.purpose}",
        message_id=row.message_id,
        references=tuple(row.thread_refs.split()),
    )
    return message, Destination(channel="email", config=EmailConfig(to=[row.address]), name="ticket-mail")


def _mark(ctx: JobContext, mail_id: int, state: str, error: str | None, *, finish: bool) -> None:
    with transaction(ctx.session_factory) as session:
        row = session.get(MailMessageRow, mail_id)
        if row is not None:
            row.state = state
            row.error = error[:500] if error else None
            if state == store.SENT:
                row.sent_at = ctx.clock.now()
        if finish:
            ctx.finish(session)


def send_queued(ctx: JobContext, mail_id: int, settings: Settings) -> None:
    """Send one queued mail; a mail already sent, failed or logged is never sent again."""
    with transaction(ctx.session_factory) as session:
        row = session.get(MailMessageRow, mail_id)
        if row is None or row.direction != store.OUTBOUND or row.state != store.QUEUED:
            log.info("mail %s: nothing to send (%s)", mail_id, "missing" if row is None else row.state)
            return
        try:
            message, destination = _compose(session, row, settings)
        except (PermanentDeliveryError, InvalidInput, ValidationError) as exc:
            compose_error: str | None = str(exc)
        else:
            compose_error = None
    if compose_error is not None:
        log.warning("mail %s cannot be sent: %s", mail_id, compose_error)
        _mark(ctx, mail_id, store.FAILED, compose_error, finish=True)
        return
    try:
        server = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
    except InvalidInput as exc:
        raise PermanentFailure(f"ZHIBAN_SMTP_URL: {exc.detail}") from exc
    channel = EmailChannel(server, clock=ctx.clock)
    try:
        result = channel.send(message, destination)
    except PermanentDeliveryError as exc:
        log.warning("mail %s to %s refused for good: %s", mail_id, destination.name, exc.reason)
        _mark(ctx, mail_id, store.FAILED, exc.reason, finish=True)
        return
    except RetryableDeliveryError as exc:
        # Keep the row queued with the reason; the engine retries with backoff, then dead-letters.
        _mark(ctx, mail_id, store.QUEUED, exc.reason, finish=False)
        raise
    _mark(ctx, mail_id, store.SENT if server is not None else store.LOGGED, None, finish=True)
    log.info("mail %s %s: %s", mail_id, "sent" if server else "logged", result.detail)
