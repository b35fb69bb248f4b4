"""The hotline's use cases: support lines per plan, answering a call step by step, and page calls' keypresses.

- A call is known by the caller's number on a customer user (identity's `phone`); an unknown caller types a
  ticket number, and is then its requester. Nobody else can file through the hotline.
- "Press 1" files a P1 ticket through channel `phone` as the caller. Whether and whom it pages is duty's decision
  (plan, priority, calendar), heard from the ticket's own change in this transaction: the hotline pages nobody
  itself. The caller is then told whether the engineer on duty is being paged.
- Otherwise (or after press 1, for details) a voicemail is recorded; when the recording is ready it becomes a
  ticket (or a message on the call's ticket) with the recording's link and the caller.
- Every step's answer is kept by (call, step): a provider's retried webhook gets the same answer and files
  nothing twice. Two copies arriving at once race on the step's key; the loser's transaction rolls back whole.
- A page call's "press 1" acknowledges the incident as the person it was sent to (as the mailed ack link does);
  the call's status updates the message's delivery (notify).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from zhiban.hotline import model
from zhiban.hotline.model import Caller, CallEvent, Line, Script, Urls
from zhiban.hotline.provider import VoiceWebhooks
from zhiban.hotline.store import HotlineCallRow, HotlineLineRow, HotlineStepRow, line_by_number, lines
from zhiban.identity import service as identity
from zhiban.identity.model import E164, Person, Principal, Role, e164
from zhiban.incidents import service as incidents
from zhiban.notify import service as notify
from zhiban.sla import service as sla
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel, Priority, Status

log = logging.getLogger("zhiban.hotline")

# Reads a ticket's requester for a caller who typed its number (the desk itself asking, never an answer's author).
_DESK = Principal(person_id="hotline", role=Role.ADMIN, organization_id=None, name="zhiban hotline")
VOICE_CHANNEL = "voice"  # notify's channel of page calls


class UnknownLine(NotFound):
    type_ = "unknown-hotline-number"


class UnknownCall(NotFound):
    type_ = "unknown-call"


class BadSignature(Forbidden):
    type_ = "bad-signature"


# --- support lines --------------------------------------------------------------------------------


def _line_value(row: HotlineLineRow) -> Line:
    return Line(row.id, row.number, row.plan, model.language_of(row.language), row.label)


def set_line(
    session: Session,
    clock: Clock,
    principal: Principal,
    number: str,
    *,
    plan: str,
    language: str = "zh",
    label: str = "",
) -> Line:
    """Add or change the support line on this number (admins): the plan whose customers call it."""
    principal.require_admin()
    number = e164(number)
    if language not in model.WORDS:
        raise InvalidInput("language must be zh or en")
    if len(label) > 100:
        raise InvalidInput("a line's label is at most 100 characters")
    try:
        key = sla.get_plan(session, plan).key
    except NotFound as exc:
        raise InvalidInput(f"no plan {plan!r}") from exc
    row = line_by_number(session, number)
    if row is None:
        row = HotlineLineRow(number=number, created_at=clock.now())
        session.add(row)
    row.plan, row.language, row.label = key, language, label.strip()
    session.flush()
    return _line_value(row)


def list_lines(session: Session, principal: Principal) -> list[Line]:
    principal.require_staff()
    return [_line_value(row) for row in lines(session)]


def remove_line(session: Session, principal: Principal, number: str) -> None:
    principal.require_admin()
    row = line_by_number(session, e164(number))
    if row is None:
        raise NotFound(f"no support line {number}")
    session.delete(row)
    session.flush()


# --- a customer's call ----------------------------------------------------------------------------


def _once(session: Session, clock: Clock, call_id: str, step: str, answer: Callable[[], str]) -> str:
    """The answer to this step of this call: the one already given, else a new one, kept."""
    found = session.get(HotlineStepRow, (call_id, step))
    if found is not None:
        log.info("hotline: call %s step %s repeated; answered as before", call_id, step)
        return found.answer
    text = answer()
    session.add(HotlineStepRow(call_id=call_id, step=step, answer=text, created_at=clock.now()))
    session.flush()
    return text


def _caller(session: Session, number: str) -> Caller | None:
    if not E164.fullmatch(number):
        return None  # withheld ("anonymous"), a SIP client, ...
    for person in identity.people_with_phone(session, number):
        if person.role == Role.CUSTOMER and person.organization_id is not None:
            return Caller(person.id, person.organization_id, person.name)
    return None


def _call(session: Session, call_id: str) -> HotlineCallRow:
    # Locked: two copies of one webhook at once take turns, and the second finds the first's answer.
    row = session.get(HotlineCallRow, call_id, with_for_update=True)
    if row is None:
        raise UnknownCall(f"no hotline call {call_id}")
    return row


def _language(row: HotlineCallRow) -> model.Language:
    return model.language_of(row.language)


def incoming(session: Session, clock: Clock, provider: VoiceWebhooks, event: CallEvent, urls: Urls) -> str:
    """A call rings a support line: greet, and offer the menu (known caller) or ask for a ticket number."""

    def answer() -> str:
        line_row = line_by_number(session, event.to_number)
        if line_row is None:
            raise UnknownLine(f"{event.to_number or 'the called number'} is not a support line of this desk")
        line = _line_value(line_row)
        caller = _caller(session, event.from_number)
        row = HotlineCallRow(
            call_id=event.call_id,
            provider=provider.name,
            line_id=line.id,
            language=line.language,
            caller=event.from_number or "unknown",
            person_id=caller.person_id if caller else None,
            organization_id=caller.organization_id if caller else None,
            identified_by="caller-id" if caller else "none",
            identify_tries=0,
            created_at=clock.now(),
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # a copy of this webhook committed the call meanwhile: answer as it did
            raise _Repeated() from None
        log.info("hotline: call %s on %s from %s (%s)", event.call_id, line.number, event.from_number, caller)
        return provider.render(model.greet(line, caller, urls))

    try:
        return _once(session, clock, event.call_id, "incoming", answer)
    except _Repeated:
        found = session.get(HotlineStepRow, (event.call_id, "incoming"))
        if found is None:
            raise Conflict(f"call {event.call_id} is being answered") from None
        return found.answer


class _Repeated(Exception):
    """A copy of the same webhook got there first."""


def identify(session: Session, clock: Clock, provider: VoiceWebhooks, event: CallEvent, urls: Urls) -> str:
    """An unknown caller typed a ticket number: its requester is the caller, else ask again (three tries)."""
    call = _call(session, event.call_id)

    def answer() -> str:
        lang = _language(call)
        w = model.words(lang)
        call.identify_tries += 1
        requester = _requester(session, call, model.parse_ticket_number(event.digits))
        if requester is not None and call.person_id is None:
            call.person_id, call.organization_id, call.identified_by = (
                requester.id,
                requester.organization_id,
                "ticket",
            )
            return provider.render(model.menu(lang, urls, first=w.known.format(name=requester.name)))
        if call.person_id is not None:  # already known: the menu again
            return provider.render(model.menu(lang, urls))
        script = Script(lang).say(w.not_found.format(digits=" ".join(event.digits[:9])))
        if call.identify_tries < model.IDENTIFY_TRIES:
            gather = model.Gather(urls.identify, (model.Say(w.identify, lang),), finish_on_key="#")
            return provider.render(script.then(gather).verbs)
        return provider.render(script.say(w.goodbye_unknown).then(model.Hangup()).verbs)

    # Keyed by what was typed: a provider's retry repeats the answer (and spends no try); typing the same wrong
    # number again hears the same "not found".
    return _once(session, clock, event.call_id, f"identify:{event.digits[:20]}", answer)


def _requester(session: Session, call: HotlineCallRow, ticket_id: int | None) -> Person | None:
    """The requester of the typed ticket, if it is still open and its organization's plan is the line's.

    Ticket numbers are not secrets: holding a caller to the line's plan and to open tickets narrows what a
    stranger can guess (three tries a call), but it is not authentication; caller id is the stronger door.
    """
    if ticket_id is None:
        return None
    try:
        view = tickets.get_ticket(session, _DESK, ticket_id)
    except NotFound:
        return None
    line = session.get(HotlineLineRow, call.line_id) if call.line_id else None
    if line is None or view.organization.plan != line.plan or Status(view.ticket.status) == Status.CLOSED:
        return None
    person = identity.person(session, view.requester.id)
    if person is None or not person.active or person.role != Role.CUSTOMER or person.organization_id is None:
        return None
    return person


def _customer(session: Session, call: HotlineCallRow) -> Person | None:
    person = identity.person(session, call.person_id)
    if person is None or not person.active or person.role != Role.CUSTOMER or person.organization_id is None:
        return None
    return person


def menu(session: Session, clock: Clock, provider: VoiceWebhooks, event: CallEvent, urls: Urls) -> str:
    """The caller's choice: 1 files a P1 ticket (duty pages per the plan), anything else leaves a voicemail."""
    call = _call(session, event.call_id)

    def answer() -> str:
        lang = _language(call)
        w = model.words(lang)
        person = _customer(session, call)
        if person is None:
            return provider.render(Script(lang).say(w.goodbye_unknown).then(model.Hangup()).verbs)
        if event.digits != "1":
            return provider.render(model.voicemail(lang, urls))
        ticket = tickets.create_ticket(
            session,
            clock,
            identity.principal_of(person),
            subject=f"Service down now (hotline call from {call.caller})"[:200],
            body=(
                f"{person.name} ({call.caller}) called the hotline and pressed 1: service down now.\n"
                f"Call {call.call_id}, identified by {call.identified_by}."
            ),
            priority=Priority.P1.value,
            channel=Channel.PHONE,
        )
        call.ticket_id = ticket.id
        on_duty = tickets.on_duty_of(session, ticket.id)  # duty heard the new P1 in this transaction
        paged = on_duty is not None and on_duty.closed_at is None
        log.info("hotline: call %s filed P1 ticket #%s (paged: %s)", call.call_id, ticket.id, paged)
        if paged:
            return provider.render(model.hold(lang, urls, w.paged.format(ticket=" ".join(str(ticket.id)))))
        told = w.filed.format(ticket=" ".join(str(ticket.id)))
        return provider.render(model.voicemail(lang, urls, details=True, script=Script(lang).say(told)))

    return _once(session, clock, event.call_id, "menu", answer)


def wait(session: Session, clock: Clock, provider: VoiceWebhooks, event: CallEvent, urls: Urls, round_: int) -> str:
    """The caller holds after a page: connect them once the engineer acknowledged (and has a phone), else wait."""
    call = _call(session, event.call_id)

    def answer() -> str:
        lang = _language(call)
        engineer = _acknowledger(session, call.ticket_id)
        line = session.get(HotlineLineRow, call.line_id) if call.line_id else None
        if engineer is not None and engineer.phone and line is not None:
            log.info("hotline: call %s connected to %s", call.call_id, engineer.email)
            return provider.render(model.connect(lang, engineer.name, engineer.phone, line.number))
        return provider.render(model.waiting(lang, urls, round_))

    return _once(session, clock, event.call_id, f"wait:{round_}", answer)


def _acknowledger(session: Session, ticket_id: int | None) -> Person | None:
    on_duty = tickets.on_duty_of(session, ticket_id) if ticket_id is not None else None
    if on_duty is None or on_duty.acknowledged_at is None or on_duty.closed_at is not None:
        return None
    incident = incidents.incident_for_link(session, on_duty.incident_id)
    person = identity.person(session, incident.acknowledged_by) if incident is not None else None
    return person if person is not None and person.active and person.is_staff else None


def recorded(session: Session, clock: Clock, provider: VoiceWebhooks, event: CallEvent) -> str:
    """The voicemail ended (the recording itself arrives on its status callback)."""
    call = _call(session, event.call_id)
    w = model.words(_language(call))
    return provider.render(Script(_language(call)).say(w.thanks).then(model.Hangup()).verbs)


def recording(session: Session, clock: Clock, provider: VoiceWebhooks, event: CallEvent) -> int | None:
    """A voicemail's recording is ready: a ticket with its link and the caller (or a message on the call's ticket).

    Returns the ticket it went to; None when nothing was filed (a failed recording, an unidentified caller).
    """
    call = _call(session, event.call_id)
    if event.recording_status not in ("", "completed") or not event.recording_url:
        log.info("hotline: call %s recording %s: nothing filed", call.call_id, event.recording_status or "without URL")
        return None
    filed: list[int] = []

    def answer() -> str:
        person = _customer(session, call)
        if person is None:
            log.warning("hotline: voicemail of unidentified call %s from %s not filed", call.call_id, call.caller)
            return ""
        text = (
            f"Voicemail from {person.name} ({call.caller}), {event.recording_seconds} s: {event.recording_url}\n"
            f"Call {call.call_id}, identified by {call.identified_by}."
        )
        principal = identity.principal_of(person)
        if call.ticket_id is not None:
            try:
                tickets.add_comment(session, clock, principal, call.ticket_id, body=text, public=True)
                filed.append(call.ticket_id)
                return str(call.ticket_id)
            except (NotFound, InvalidInput):
                pass  # the ticket went away or was closed: file the voicemail on its own
        ticket = tickets.create_ticket(
            session,
            clock,
            principal,
            subject=f"Voicemail from {call.caller}"[:200],
            body=text,
            priority=model.VOICEMAIL_PRIORITY,
            channel=Channel.PHONE,
        )
        call.ticket_id = ticket.id
        filed.append(ticket.id)
        log.info("hotline: voicemail of call %s filed as ticket #%s", call.call_id, ticket.id)
        return str(ticket.id)

    kept = _once(session, clock, event.call_id, f"recording:{event.recording_id[:20]}", answer)
    return filed[0] if filed else (int(kept) if kept.isdigit() else None)


# --- page calls to engineers ----------------------------------------------------------------------


def page_keypress(session: Session, clock: Clock, provider: VoiceWebhooks, event: CallEvent) -> str:
    """The engineer pressed a key on a page call: 1 acknowledges the incident as them."""
    delivery = notify.delivery_by_provider_id(session, VOICE_CHANNEL, event.call_id)
    person = identity.person(session, delivery.person_id) if delivery is not None else None
    lang = model.language_of(person.language if person else "en")
    w = model.words(lang)

    if delivery is None or delivery.subject_kind != "incident" or person is None:
        # Not kept as the call's answer: the worker may not have recorded the call's id yet.
        return provider.render(Script(lang).say(w.not_a_page).then(model.Hangup()).verbs)

    def answer() -> str:
        if event.digits != "1":
            return provider.render(Script(lang).say(w.not_acknowledged).then(model.Hangup()).verbs)
        try:
            incidents.acknowledge_as(session, clock, delivery.subject_id, person.id, via="phone keypress")
        except Conflict:
            return provider.render(Script(lang).say(w.already_resolved).then(model.Hangup()).verbs)
        log.info("hotline: %s acknowledged incident %s by keypress", person.email, delivery.subject_id)
        return provider.render(Script(lang).say(w.acknowledged).then(model.Hangup()).verbs)

    return _once(session, clock, event.call_id, "page-ack", answer)


def page_status(session: Session, clock: Clock, event: CallEvent) -> str | None:
    """A page call's status: answered or completed counts as delivered; busy, no answer, failed as failed."""
    status = event.call_status
    if status in model.CALL_DELIVERED:
        state = notify.PROVIDER_DELIVERED
    elif status in model.CALL_FAILED:
        state = notify.PROVIDER_FAILED
    else:
        return None  # queued, initiated, ringing: nothing to record yet
    outcome = notify.provider_status(session, clock, VOICE_CHANNEL, event.call_id, state=state, detail=f"call {status}")
    return outcome.state if outcome is not None else None
