"""Use cases of ticket mail: file or thread a received mail, queue the desk's mail to customers in notify."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from zhiban.core.i18n import translate
from zhiban.core.settings import Settings, SettingsSource
from zhiban.identity.model import Person, Principal, Role
from zhiban.identity.service import person_with_email as person_by_email
from zhiban.identity.service import principal_of
from zhiban.mail import store
from zhiban.mail.auth import DnsTxt, SenderCheck, check_sender, trusted_ids
from zhiban.mail.model import (
    MAX_HEADER_IDS,
    MAX_INBOUND_BYTES,
    InboundMail,
    bounded_body,
    compose_text,
    inbound_message_id,
    outbound_subject,
    parse_mail,
    sent_references,
    subject_priority,
    ticket_subject,
    ticket_token,
    trim_quoted,
    without_nul,
)
from zhiban.mail.reply_token import reply_key, ticket_addressing, tickets_named
from zhiban.mail.rtc_fields import fields_in_text
from zhiban.mail.store import HeldMailRow, MailMessageRow
from zhiban.notify import Link, Message, MessageOutcome, outbox
from zhiban.notify.channels.email import parse_smtp_url
from zhiban.notify.model import Language
from zhiban.notify.render import format_since
from zhiban.tickets import attachments
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel, OnDuty, Priority, Status, TicketRef

if TYPE_CHECKING:
    from zhiban.tickets.store import CommentRow

log = logging.getLogger("zhiban.mail")

OUTBOX_SUBJECT = "ticket_mail"  # notify messages about an outbound mail_messages row
MAX_MAIL_TEXT = 30_000  # notify.Message holds 32,000 characters; the rest is in the portal
# Reads tickets on the desk's behalf when it writes to a customer (never used to write).
_DESK = Principal(person_id="desk", role=Role.AGENT, organization_id=None, name="zhiban")

Action = Literal["created", "replied", "ignored", "duplicate", "held"]
MAX_HELD = 1_000  # mail waiting for an agent; past it unauthenticated mail is deferred (452)


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
        if self.action == "held":
            return "250 2.0.0 held for review by an agent"
        return f"250 2.0.0 {self.action}{where}"


class HeldQueueFull(Exception):
    """The held-mail queue is full: the sender should try later (a temporary refusal)."""


# --- inbound ----------------------------------------------------------------------------------


def read_mail(raw: bytes, envelope_sender: str | None) -> InboundMail:
    """parse_mail, with any failure to read the bytes as InvalidInput: it will never succeed on a retry."""
    if len(raw) > MAX_INBOUND_BYTES:
        raise TooLarge(f"message of {len(raw)} bytes is larger than {MAX_INBOUND_BYTES}")
    try:
        return parse_mail(raw, envelope_sender)
    except (InvalidInput, MemoryError):
        raise
    except Exception as exc:  # the parser's own errors, RecursionError, codec errors: the mail, not us
        raise InvalidInput(f"unreadable message ({type(exc).__name__})") from exc


def receive_mail(
    session: Session,
    clock: Clock,
    raw: bytes,
    *,
    envelope_sender: str | None,
    settings: Settings,
    recipients: Sequence[str] = (),
    dkim_dns: DnsTxt | None = None,
    mailbox_id: str | None = None,
) -> Outcome:
    """File a customer's mail as a new ticket or a reply, or hold it when its sender is not authenticated.

    `mailbox_id` names the IMAP mailbox it was read from (None: the SMTP listener, a pipe).
    Raises TooLarge, InvalidInput or Forbidden to refuse it, HeldQueueFull to defer it.
    """
    mail = read_mail(raw, envelope_sender)
    if mail.auto_reason is not None:
        log.info("inbound mail ignored: %s (from %s, subject %r)", mail.auto_reason, mail.sender, mail.subject[:80])
        return Outcome("ignored", None, mail.auto_reason)
    message_id = mail.message_id or inbound_message_id(raw)
    seen = store.by_message_id(session, message_id)
    if seen is not None:
        log.info("inbound mail %s already received for ticket #%s; ignored", message_id, seen.ticket_id)
        return Outcome("duplicate", seen.ticket_id, "already received")
    person = _customer(session, mail.sender)
    verdict = _drill_vouches(session, mail) or check_sender(
        raw,
        mail.sender_domain,
        mail.auth_results,
        trusted=trusted_ids(settings.mail_authserv_id),
        dkim_signed=mail.dkim_signed,
        verify=settings.mail_verify_dkim,
        dnsfunc=dkim_dns,
    )
    if not verdict.authenticated:
        return _hold(
            session, clock, raw, mail, message_id, person, envelope_sender, recipients, verdict.reason, mailbox_id
        )
    log.info("inbound mail from %s authenticated: %s", mail.sender, verdict.reason)
    return _file(session, clock, mail, message_id, person, recipients, settings, mailbox_id)


def _drill_vouches(session: Session, mail: InboundMail) -> SenderCheck | None:
    """A drill's own mail, marked with the one-time key its drill minted: authenticated by that key (a drill
    customer's `.invalid` domain has no DKIM or DMARC). Any other mark proves nothing."""
    if mail.drill_mark is None:
        return None
    from zhiban.drills import service as drills

    drill_id = drills.vouch_for_mail(session, mail.drill_mark, mail.sender)
    if drill_id is None:
        log.warning("inbound mail from %s carries a drill mark no filing drill vouches for", mail.sender)
        return None
    return SenderCheck(True, f"drill {drill_id}: the drill's own one-time key")


def _customer(session: Session, address: str) -> Person:
    person = person_by_email(session, address)
    if person is None or not person.active or person.role != Role.CUSTOMER or person.organization_id is None:
        log.warning("inbound mail refused: %s is not a customer user of this desk", address)
        raise Forbidden("the sender is not a customer user of this desk")
    return person


def _file(
    session: Session,
    clock: Clock,
    mail: InboundMail,
    message_id: str,
    person: Person,
    recipients: Sequence[str],
    settings: Settings,
    mailbox_id: str | None = None,
) -> Outcome:
    """File an authenticated (or agent-released) mail as the customer: a reply if it carries a ticket's token."""
    principal = principal_of(person)
    ticket_id = _thread_target(session, principal, mail, recipients)
    if ticket_id is not None:
        comment = tickets.add_comment(
            session, clock, principal, ticket_id, body=bounded_body(trim_quoted(mail.text)), public=True
        )
        _record_inbound(session, clock, ticket_id, message_id, comment.id, mail.sender, mailbox_id)
        _keep_files(session, clock, comment, mail, settings)
        log.info("inbound mail from %s added to ticket #%s", mail.sender, ticket_id)
        return Outcome("replied", ticket_id, "threaded")
    # RTC fields the customer wrote as lines ("App ID: …", "频道：…"): each one that fails its check is dropped.
    stated = fields_in_text(mail.text)
    fields = tickets.lenient(session, person.organization_id or "", stated, now=clock.now()) if stated else None
    ticket = tickets.create_ticket(
        session,
        clock,
        principal,
        subject=ticket_subject(mail.subject),
        body=bounded_body(mail.text.strip()),
        channel=Channel.EMAIL,
        priority=subject_priority(mail.subject) or Priority.P3.value,  # the portal's default without a tag
        fields=fields,
    )
    first = tickets.get_ticket(session, _DESK, ticket.id).comments[0]
    _record_inbound(session, clock, ticket.id, message_id, first.id, mail.sender, mailbox_id)
    _keep_files(session, clock, first, mail, settings)
    from zhiban.drills.service import is_drill_ticket

    if not is_drill_ticket(session, ticket.id):  # a drill's synthetic requester is never mailed
        _queue(session, clock, ticket.id, "confirmation", None, person.email, settings)
    log.info("inbound mail from %s filed as ticket #%s", mail.sender, ticket.id)
    return Outcome("created", ticket.id, "new ticket")


def _keep_files(session: Session, clock: Clock, comment: CommentRow, mail: InboundMail, settings: Settings) -> None:
    """Keep the mail's files with the message it became (those past the limits are left out and logged: the mail
    itself is never refused for them)."""
    if not mail.files:
        return
    files = [attachments.Upload.of_bytes(f.filename, f.content_type, f.data) for f in mail.files]
    attachments.keep_with_message(
        session,
        clock,
        comment,
        files,
        store=attachments.store_of(settings),
        limits=attachments.limits_of(settings),
    )


def _thread_target(session: Session, principal: Principal, mail: InboundMail, recipients: Sequence[str]) -> int | None:
    """The open ticket this mail answers, named by a valid reply token (never by subject), in the sender's tenant."""
    candidates = tickets_named(reply_key(), [*recipients, *mail.addressed_to, *mail.thread_ids()])
    # Mail the desk sent before reply tokens existed had random, unguessable Message-IDs: those still thread.
    sent = store.tickets_of_message_ids(session, mail.thread_ids(), direction=store.OUTBOUND)
    candidates += [sent[mid] for mid in mail.thread_ids() if mid in sent]
    for ticket_id in dict.fromkeys(candidates):
        try:
            view = tickets.get_ticket(session, principal, ticket_id)
        except NotFound:
            # Another tenant's ticket, or none: the mail never reaches it (and learns nothing about it).
            log.warning("inbound mail from %s names ticket #%s outside its organization", mail.sender, ticket_id)
            continue
        if view.ticket.status == Status.CLOSED:
            kept = tickets.merged_into(session, ticket_id)
            # A merged duplicate's thread goes on where it was merged (same organization: merges never cross).
            if kept is not None and tickets.get_ticket(session, principal, kept).ticket.status != Status.CLOSED:
                log.info("inbound mail from %s answers merged #%s: added to #%s", mail.sender, ticket_id, kept)
                return kept
            log.info("inbound mail from %s answers closed ticket #%s: filed as a new ticket", mail.sender, ticket_id)
            continue
        return ticket_id
    if ticket_token(mail.subject) is not None:
        log.info("inbound mail from %s has a ticket tag but no valid reply token: not threaded", mail.sender)
    return None


# --- held mail --------------------------------------------------------------------------------


def _hold(
    session: Session,
    clock: Clock,
    raw: bytes,
    mail: InboundMail,
    message_id: str,
    person: Person,
    envelope_sender: str | None,
    recipients: Sequence[str],
    reason: str,
    mailbox_id: str | None = None,
) -> Outcome:
    """Keep an unauthenticated customer mail for an agent; nothing is filed as the customer."""
    if store.held_by_message_id(session, message_id) is not None:
        return Outcome("duplicate", None, "already held")
    if store.count_held(session) >= MAX_HELD:
        log.warning("held-mail queue full (%s); mail from %s deferred", MAX_HELD, mail.sender)
        raise HeldQueueFull(f"{MAX_HELD} mails already wait for an agent")
    row = HeldMailRow(
        message_id=message_id,
        sender=mail.sender,
        envelope_sender=without_nul(envelope_sender or "")[:254] or None,
        recipients="\n".join(without_nul(r)[:254] for r in recipients[:MAX_HEADER_IDS]),
        person_id=person.id,
        organization_id=person.organization_id,
        subject=ticket_subject(mail.subject),
        reason=reason[:300],
        raw=raw,
        state=store.HELD,
        received_at=clock.now(),
        mailbox_id=mailbox_id,
    )
    session.add(row)
    session.flush()
    log.warning("inbound mail from %s held for an agent (#%s): %s", mail.sender, row.id, reason)
    return Outcome("held", None, reason)


def list_held_mail(
    session: Session, principal: Principal, *, state: str = store.HELD, limit: int = 100
) -> list[HeldMailRow]:
    """Held mail for agents, newest first."""
    principal.require_staff()
    if state not in (store.HELD, store.RELEASED, store.DISCARDED):
        raise InvalidInput("state must be held, released or discarded")
    return store.list_held(session, state, max(1, min(limit, 500)))


def get_held_mail(session: Session, principal: Principal, held_id: int) -> HeldMailRow:
    """One held mail, whatever its state (agents)."""
    principal.require_staff()
    row = session.get(HeldMailRow, held_id)
    if row is None:
        raise NotFound(f"no held mail {held_id}")
    return row


def _undecided(session: Session, principal: Principal, held_id: int) -> HeldMailRow:
    row = get_held_mail(session, principal, held_id)
    if row.state != store.HELD:
        raise Conflict(f"held mail {held_id} was already {row.state}")
    return row


def release_held_mail(
    session: Session, clock: Clock, principal: Principal, held_id: int, settings: Settings
) -> Outcome:
    """An agent vouches for a held mail: it is filed as its sender, as if it had been authenticated."""
    row = _undecided(session, principal, held_id)
    mail = read_mail(row.raw, row.envelope_sender)
    if store.by_message_id(session, row.message_id) is not None:
        raise Conflict("a mail with this Message-ID was filed since; discard this copy")
    try:
        person = _customer(session, mail.sender)
    except Forbidden as exc:
        raise Conflict(f"{mail.sender} is no longer an active customer user") from exc
    recipients = [r for r in row.recipients.split("\n") if r]
    outcome = _file(session, clock, mail, row.message_id, person, recipients, settings, row.mailbox_id)
    _decide(row, clock, principal, store.RELEASED)
    row.ticket_id = outcome.ticket_id
    log.info("held mail %s released by %s: %s ticket #%s", held_id, principal.person_id, outcome.action, row.ticket_id)
    return outcome


def discard_held_mail(session: Session, clock: Clock, principal: Principal, held_id: int) -> HeldMailRow:
    """An agent judges a held mail forged or unwanted: it is dropped, and its bytes with it."""
    row = _undecided(session, principal, held_id)
    _decide(row, clock, principal, store.DISCARDED)
    log.info("held mail %s from %s discarded by %s", held_id, row.sender, principal.person_id)
    return row


def _decide(row: HeldMailRow, clock: Clock, principal: Principal, state: str) -> None:
    row.state = state
    row.decided_at = clock.now()
    row.decided_by = principal.person_id
    row.raw = b""  # the ticket keeps what was filed; a discarded mail is not kept


def _record_inbound(
    session: Session,
    clock: Clock,
    ticket_id: int,
    message_id: str,
    comment_id: int,
    sender: str,
    mailbox_id: str | None = None,
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
            mailbox_id=mailbox_id,
        )
    )
    session.flush()


# --- outbound ---------------------------------------------------------------------------------

# The desk's address and portal link of mail handed to the outbox, read at each use from what mail.hooks hands over.
current_settings: SettingsSource[Settings] = SettingsSource("zhiban.mail.hooks")


def mail_domain(settings: Settings) -> str:
    """The domain of the desk's Message-IDs: the SMTP sender's, else the portal's host."""
    if settings.smtp_url:
        try:
            return parse_smtp_url(settings.smtp_url).from_address.rpartition("@")[2] or "localhost"
        except InvalidInput:
            pass
    return urlsplit(settings.base_url).hostname or "localhost"


def desk_address(settings: Settings) -> str:
    """The address the desk's mail comes from: the SMTP sender's, else zhiban@ the portal's host."""
    if settings.smtp_url:
        try:
            return parse_smtp_url(settings.smtp_url).from_address
        except InvalidInput:
            pass
    return f"zhiban@{mail_domain(settings)}"


def _queue(
    session: Session,
    clock: Clock,
    ticket_id: int,
    purpose: str,
    comment_id: int | None,
    recipient: str,
    settings: Settings,
) -> MailMessageRow:
    """Record an outbound mail (its Message-ID joins the thread now) and queue it in notify's outbox, once."""
    dedup_key = f"mail:{purpose}:{comment_id if comment_id is not None else ticket_id}"
    existing = store.by_dedup_key(session, dedup_key)
    if existing is not None:
        return existing
    row = MailMessageRow(
        ticket_id=ticket_id,
        # Carries the ticket's secret reply token, so In-Reply-To/References of a reply bring it back.
        message_id=ticket_addressing(reply_key(), ticket_id, _ticket_address(session, ticket_id, settings)).message_id,
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
    hand_to_outbox(session, clock, row)
    return row


def _ticket_address(session: Session, ticket_id: int, settings: Settings) -> str:
    """The address the ticket's mail comes from: the support mailbox it was read from, else the desk's."""
    return store.mailbox_address_of_ticket(session, ticket_id) or desk_address(settings)


def hand_to_outbox(session: Session, clock: Clock, row: MailMessageRow) -> None:
    """Queue a recorded outbound mail in notify's outbox; a mail that cannot be made is marked failed."""
    mailbox_address = store.mailbox_address_of_ticket(session, row.ticket_id)
    address = mailbox_address or desk_address(current_settings())
    try:
        outbox.queue_email(
            session,
            clock,
            message=_compose(session, row),
            to=row.address,
            subject_kind=OUTBOX_SUBJECT,
            subject_id=row.id,
            ticket_id=row.ticket_id,
            # The ticket's secret reply address: only a reply that carries it threads onto the ticket.
            reply_to=ticket_addressing(reply_key(), row.ticket_id, address).reply_to,
            # A ticket that came in through a support mailbox is answered from that mailbox's address.
            from_address=mailbox_address,
        )
    except (InvalidInput, ValidationError) as exc:
        # The reply itself stands; only its mail cannot be made (e.g. a requester address the channel refuses).
        log.warning("mail %s cannot be sent: %s", row.id, exc)
        row.state, row.error = store.FAILED, str(exc)[:500]


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


def _compose(session: Session, row: MailMessageRow) -> Message:
    """The mail of an outbound row, threaded by its frozen Message-ID and References."""
    view = tickets.get_ticket(session, _DESK, row.ticket_id)
    language: Language = "zh" if view.requester.language == "zh" else "en"
    # The portal link as the running desk's settings give it (as SLA and on-call notices do).
    url = f"{current_settings().base_url.rstrip('/')}/tickets/{row.ticket_id}"
    label = translate(language, "mail.view_ticket", id=row.ticket_id)
    hint = translate(language, "mail.reply_hint", id=row.ticket_id)
    if row.purpose == "reply":
        comment = next((c for c in view.comments if c.id == row.comment_id), None)
        if comment is None:
            raise InvalidInput(f"comment {row.comment_id} of ticket #{row.ticket_id} is gone")
        body = comment.body
    else:
        body = translate(language, "mail.confirmation", id=row.ticket_id, subject=view.ticket.subject)
        if view.on_duty is not None:
            # Duty pages in the transaction that filed the ticket, before this acknowledgement is composed.
            body += "\n\n" + _on_duty_words(language, view.on_duty, view.requester.timezone)
    if len(body) > MAX_MAIL_TEXT:
        body = body[:MAX_MAIL_TEXT] + "\n[…]"
    return Message(
        subject=outbound_subject(row.ticket_id, view.ticket.subject),
        text=compose_text(body, label, url, hint),
        idempotency_key=row.dedup_key or f"mail:{row.id}",
        language=language,
        links=(Link("ticket", url, label[:80]),),
        event=f"ticket.{row.purpose}",
        message_id=row.message_id,
        references=tuple(row.thread_refs.split()),
    )


def _on_duty_words(language: Language, on_duty: OnDuty, timezone: str) -> str:
    """The acknowledgement's line on the engineer on duty woken for the ticket, in the requester's zone."""
    if on_duty.paged_at is None:
        return translate(language, "mail.on_duty_paging")
    try:
        at = format_since(on_duty.paged_at, timezone)
    except InvalidInput:
        at = format_since(on_duty.paged_at, "UTC")
    return translate(language, "mail.on_duty_paged", at=at)


def record_result(session: Session, clock: Clock, row: MessageOutcome) -> None:
    """notify listener: the outbound row follows its message (sent, logged without SMTP, failed, or retrying)."""
    if row.subject_kind != OUTBOX_SUBJECT:
        return
    mail = session.get(MailMessageRow, int(row.subject_id))
    if mail is None or mail.direction != store.OUTBOUND:
        return
    if row.state == "sent":
        # No SMTP server configured: the channel only logged it, and gave no Message-ID back.
        mail.state = store.SENT if row.provider_id else store.LOGGED
        mail.error = None
        mail.sent_at = row.sent_at or clock.now()
    elif row.state in ("failed", "cancelled"):
        mail.state, mail.error = store.FAILED, (row.last_error or row.state)[:500]
    elif row.last_error:
        mail.state, mail.error = store.QUEUED, row.last_error[:500]
