"""Use cases of drills: schedule one, file its ticket through the customer's door, and judge what happened.

A drill is a real ticket from a drill customer: an organization of its own on the drilled plan, marked as a
drill (`Organization.drill`), made on first use. At the chosen local time the drill mints a short-lived API
token for that customer and files a ticket through the desk's own HTTP API, as any customer's integration
would. Whatever happens next is caused by the ticket alone: the plan's support mode, the priority and the
customer's calendar decide whether the on-duty engineer is paged (zhiban.duty), exactly as for a real customer.
An e-mail drill (`channel="email"`) instead sends the
drill customer's mail over SMTP to the desk's own inbound listener, as a customer's mail server would; the mail
carries a one-time key the drill minted (`X-Zhiban-Drill`), which is what the desk takes as the sender's
authentication (`vouch_for_mail`), since a drill's `.invalid` domain has no DKIM or DMARC to pass.
After its window the drill is judged (drills.model.evaluate) on ticket -> page -> acknowledgement -> first public
reply, then its ticket is solved (which resolves the page). The ticket and the on-duty incident are registered
in the `drills` table, and the organization's flag marks its tickets from the first moment, so that reports,
status pages and customer mail leave them out (see is_drill_ticket).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import smtplib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock, FrozenClock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.drills import queries
from zhiban.drills.model import (
    MAX_WINDOW_MINUTES,
    Observation,
    evaluate,
    intake_channel,
    next_occurrence,
    ticket_of_smtp_answer,
    zone,
)
from zhiban.drills.store import DrillRow, drill_of_incident, drill_of_ticket, recent_drills
from zhiban.engine import JobContext, cancel, enqueue
from zhiban.identity import service as identity
from zhiban.identity.model import Organization, Person, Principal, Role

if TYPE_CHECKING:
    from zhiban.sla.model import SupportTerms

log = logging.getLogger("zhiban.drills")

START_JOB = "drill.start"
EVALUATE_JOB = "drill.evaluate"
DEFAULT_WINDOW_MINUTES = 60
MAX_SCHEDULED = 200
DRILL_MARK = "[DRILL 演练]"
DRILL_DOMAIN = "drills.zhiban.invalid"  # .invalid never resolves: a drill requester has no real mailbox
INTAKE_TIMEOUT_SECONDS = 15.0
MARK_HEADER = "X-Zhiban-Drill"  # "<drill id>; key=<one-time key>": the drill's mail, vouched for by the drill
_DESK = Principal(person_id="system", role=Role.ADMIN, organization_id=None, name="zhiban")

_config: dict[str, str] = {}
_defaults: list[Callable[[], str]] = []  # a process without a desk: set by drills.hooks


def configure(*, api_url: str) -> None:
    """Where drills file their tickets: the desk's own HTTP API, as customers reach it (set by the desk at start)."""
    _config["api_url"] = api_url.rstrip("/")


def api_url_default(source: Callable[[], str]) -> None:
    """Where to take the API's URL from when no desk configured it."""
    _defaults[:] = [source]


def api_url() -> str:
    if "api_url" not in _config:
        if not _defaults:
            raise RuntimeError("drills are not configured: no desk and no drills.hooks")
        configure(api_url=_defaults[0]())
    return _config["api_url"]


_mail: dict[str, tuple[str, int, str]] = {}
_mail_defaults: list[Callable[[], tuple[str, int, str]]] = []  # a process without a desk: set by drills.hooks


def configure_mail(*, host: str, port: int, to: str) -> None:
    """Where e-mail drills send their mail: the desk's inbound SMTP listener (port 0: off) and the desk's address."""
    _mail["intake"] = (host, port, to)


def mail_intake_default(source: Callable[[], tuple[str, int, str]]) -> None:
    """Where to take the inbound listener's address from when no desk configured it."""
    _mail_defaults[:] = [source]


def mail_intake() -> tuple[str, int, str]:
    if "intake" not in _mail:
        if not _mail_defaults:
            raise RuntimeError("drills are not configured: no desk and no drills.hooks")
        host, port, to = _mail_defaults[0]()
        configure_mail(host=host, port=port, to=to)
    return _mail["intake"]


# -- the registry other features ask ----------------------------------------------------------------------------


def is_drill_ticket(session: Session, ticket_id: int) -> bool:
    """Whether a drill filed this ticket (customer mail and webhooks must skip it), from its first moment on."""
    from zhiban.tickets import service as tickets

    if drill_of_ticket(session, ticket_id) is not None:
        return True
    ref = tickets.ref(session, ticket_id)
    org = identity.organization(session, ref.organization_id) if ref is not None else None
    return org is not None and org.drill


def is_drill_incident(session: Session, incident_id: str) -> bool:
    """Whether a drill's ticket paged through this incident (status pages and reports leave it out)."""
    return drill_of_incident(session, incident_id) is not None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def vouch_for_mail(session: Session, mark: str, sender: str) -> str | None:
    """The drill that sent this mail, when its `X-Zhiban-Drill` mark carries the key that drill minted for it.

    Asked by the desk's inbound mail (zhiban.mail): a drill customer's `.invalid` domain has no DKIM or DMARC,
    so the drill's own key is the proof, as an API drill's one-time token is. Only while the drill is filing,
    only from its own drill customer's address; None otherwise (the mail is then judged as any other).
    """
    drill_id, _, rest = mark.strip()[:200].partition(";")
    key = rest.strip().removeprefix("key=")
    drill_id = drill_id.strip()
    if not drill_id or not key or len(drill_id) > 32:
        return None
    row = session.get(DrillRow, drill_id)
    if row is None or row.state != "filing" or row.channel != "email" or row.intake_key is None:
        return None
    if not hmac.compare_digest(row.intake_key, _digest(key)):
        return None
    if sender.strip().lower() != _requester_email(row.plan):
        return None
    return row.id


# -- scheduling -------------------------------------------------------------------------------------------------


def _plan(session: Session, plan: str) -> Any:
    from zhiban.sla import service as sla

    try:
        return sla.get_plan(session, plan)
    except NotFound as exc:
        known = ", ".join(p.key for p in sla.list_plans(session))
        raise InvalidInput(f"unknown plan {plan!r}; plans: {known}") from exc


def _paging_terms(session: Session, plan_key: str) -> SupportTerms:
    """The plan's support terms, refused when its tickets can wake nobody (a drill would prove nothing)."""
    from zhiban.sla import service as sla
    from zhiban.sla.model import SupportMode

    terms = sla.support_of(session, plan_key)
    if terms.mode == SupportMode.QUEUE:
        raise InvalidInput(f"the {plan_key} plan is a queue: its tickets wake nobody; drill a dedicated or standby one")
    if terms.paging_service_id is None or not terms.paging_priorities:
        raise InvalidInput(f"the {plan_key} plan names no incident service or priority to page")
    return terms


def drill_priority(terms: SupportTerms) -> str:
    """The most urgent priority the plan pages for: the drill's ticket has it."""
    return min(p.value for p in terms.paging_priorities)


def schedule_drill(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    plan: str,
    at: str,
    tz: str = "Asia/Shanghai",
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    expected_team: str | None = None,
    channel: str = "api",
) -> DrillRow:
    """Schedule a drill of a paging plan at the next local time matching `at` (e.g. "Sunday 03:00") in `tz`,
    filing its ticket through `channel`: "api" (the ticket API) or "email" (the inbound mail listener)."""
    from zhiban.incidents import service as incidents

    principal.require_staff()
    zone(tz)
    channel = intake_channel(channel)
    plan_row = _plan(session, plan)
    terms = _paging_terms(session, plan_row.key)
    paging = incidents.find_service(session, terms.paging_service_id or "")
    if paging is None:
        raise InvalidInput(f"the {plan_row.key} plan pages through an incident service that is gone")
    if not 5 <= window_minutes <= MAX_WINDOW_MINUTES:
        raise InvalidInput(f"the drill window is 5-{MAX_WINDOW_MINUTES} minutes")
    if expected_team is not None:
        expected_team = expected_team.strip() or None
        if expected_team and identity.team_named(session, expected_team) is None:
            raise InvalidInput(f"no team {expected_team!r}")
    pending = session.scalar(select(func.count()).select_from(DrillRow).where(DrillRow.state == "scheduled")) or 0
    if pending >= MAX_SCHEDULED:
        raise InvalidInput(f"at most {MAX_SCHEDULED} drills may wait at once")
    when = next_occurrence(at, clock.now(), tz)
    row = DrillRow(
        plan=plan_row.key,
        service_id=paging.id,  # where the plan pages today (the page itself follows the plan at run time)
        service_name=paging.name,
        at_label=" ".join(at.split())[:100],
        tz=tz,
        scheduled_at=when,
        window_minutes=window_minutes,
        expected_team=expected_team,
        channel=channel,
        state="scheduled",
        created_by=principal.person_id,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    enqueue(session, START_JOB, {"drill": row.id}, due_at=when, dedup_key=f"drill.start:{row.id}")
    return row


def cancel_drill(session: Session, principal: Principal, drill_id: str) -> DrillRow:
    """Call off a drill that has not started."""
    principal.require_staff()
    row = get_drill(session, principal, drill_id)
    if row.state != "scheduled":
        raise Conflict(f"the drill is {row.state}; only a scheduled drill can be cancelled")
    row.state = "cancelled"
    cancel(session, f"drill.start:{row.id}")
    return row


def get_drill(session: Session, principal: Principal, drill_id: str) -> DrillRow:
    principal.require_staff()
    row = session.get(DrillRow, drill_id) if len(drill_id) <= 32 else None
    if row is None:
        raise NotFound(f"no drill {drill_id}")
    return row


def list_drills(session: Session, principal: Principal, limit: int = 100) -> list[DrillRow]:
    principal.require_staff()
    return recent_drills(session, limit)


# -- running ----------------------------------------------------------------------------------------------------


def _slug(plan_key: str) -> str:
    return f"zhiban-drill-{plan_key}"[:63].rstrip("-")


def _requester_email(plan_key: str) -> str:
    return f"{_slug(plan_key)}@{DRILL_DOMAIN}"


def drill_customer(session: Session, clock: Clock, plan_key: str, tz: str) -> tuple[Organization, Person]:
    """The drill customer of a plan: an organization marked as a drill, on that plan, and its requester."""
    slug = _slug(plan_key)
    org = identity.organization_with_slug(session, slug)
    if org is None:
        org = identity.organization_value(identity.create_organization(
            session, clock, name=f"Drill · {plan_key}", slug=slug, plan=plan_key, country="CN", timezone=tz,
            language="en", drill=True,
        ))  # fmt: skip
    elif not org.drill:
        raise Conflict(f"the organization {slug!r} is a real customer, not a drill's")
    email = _requester_email(plan_key)
    person = identity.person_with_email(session, email)
    if person is None:
        person = identity.person_value(identity.create_person(
            session, clock, email=email, name=f"Drill requester ({plan_key})", role="customer",
            organization_id=org.id, timezone=tz,
        ))  # fmt: skip
    return org, person


def _subject(drill: DrillRow) -> str:
    # The drill's id in the subject finds a ticket filed by a run that died before recording it.
    return f"{DRILL_MARK} {drill.id}: viewers cannot join rooms"


_BODY = (
    "This is a drill: a real ticket from a synthetic customer, to test that a ticket wakes the engineer on duty. "
    "Please acknowledge the page and answer it as you would a real one. "
    "这是一次演练：由模拟客户提交的真实工单，用于检验工单能否叫醒值班工程师。请确认呼叫，并按真实工单处理。"
)


def _done(drill: DrillRow, now: datetime, problem: str) -> None:
    drill.state = "done"
    drill.finished_at = now
    drill.result = {"passed": False, "broke": "intake", "checks": [], "teams": {}, "problems": [problem]}


def _file_through_api(token: str, subject: str, priority: str) -> int | str:
    """POST the ticket to the desk's API as the drill customer: its id, or what went wrong."""
    url = f"{api_url()}/api/v1/tickets"
    try:
        answer = httpx.post(
            url, json={"subject": subject, "body": _BODY, "priority": priority},
            headers={"Authorization": f"Bearer {token}"}, timeout=INTAKE_TIMEOUT_SECONDS,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        return f"intake failed: the ticket API at {url} did not answer ({type(exc).__name__})"
    if answer.status_code != 201:
        return f"intake failed: the ticket API answered HTTP {answer.status_code}: {answer.text[:200]}"
    try:
        return int(answer.json()["id"])
    except (ValueError, KeyError, TypeError):
        return "intake failed: the ticket API's answer carried no ticket id"


def _file_by_mail(drill_id: str, key: str, sender: str, subject: str, priority: str) -> int | str:
    """Send the drill customer's mail to the desk's inbound SMTP listener: the ticket it filed, or what went wrong.

    The subject's "[P1]" tag names the priority, as a customer's would; the mark header carries the drill's key.
    """
    host, port, to = mail_intake()
    if port == 0:
        return "intake failed: the inbound mail listener is off (ZHIBAN_INBOUND_SMTP_PORT=0)"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"[{priority}] {subject}"
    # One Message-ID per drill: a repeat of this mail is the same mail to the desk ("duplicate"), never a 2nd ticket.
    message["Message-ID"] = f"<drill-{drill_id}@{DRILL_DOMAIN}>"
    message[MARK_HEADER] = f"{drill_id}; key={key}"
    message.set_content(_BODY)
    where = f"{host}:{port}"
    try:
        with smtplib.SMTP(host, port, timeout=INTAKE_TIMEOUT_SECONDS) as smtp:
            smtp.ehlo_or_helo_if_needed()
            code, text = smtp.mail(sender)
            if code == 250:
                code, text = smtp.rcpt(to)
            if code in (250, 251):
                code, text = smtp.data(message.as_bytes())
    except smtplib.SMTPResponseException as exc:  # DATA refused (550, 554, 451, 452 ...)
        code, text = exc.smtp_code, exc.smtp_error if isinstance(exc.smtp_error, bytes) else b""
    except (OSError, smtplib.SMTPException) as exc:
        return f"intake failed: the inbound mail listener at {where} did not answer ({type(exc).__name__})"
    return ticket_of_smtp_answer(code, text.decode("utf-8", "replace"))


def start(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `drill.start` timer: file the drill customer's ticket through the API (or by mail to the inbound
    listener), register it, arm the judgement.

    Three steps, so that no transaction is open while the desk files the ticket (on SQLite, one writer): claim
    the drill and mint a token (an e-mail drill: a key); file; record. A run that dies after filing finds its
    ticket by subject (and a repeated mail is the same Message-ID, which the desk takes once).
    """
    clock = ctx.clock
    drill_id = str(payload.get("drill"))
    with ctx.session_factory() as session, session.begin():
        drill = session.scalar(select(DrillRow).where(DrillRow.id == drill_id).with_for_update())
        if drill is None or drill.state not in ("scheduled", "filing"):
            ctx.finish(session)
            return
        now = clock.now()
        try:
            terms = _paging_terms(session, drill.plan)
            _, requester = drill_customer(session, clock, drill.plan, drill.tz)
        except (InvalidInput, Conflict) as exc:
            _done(drill, now, f"the drill could not start: {exc.detail}")
            ctx.finish(session)
            return
        drill.state = "filing"
        subject, priority = _subject(drill), drill_priority(terms)
        filed = queries.filed_ticket(session, requester.id, subject)
        by_mail = drill.channel == "email"
        token = key = None
        if filed is None and by_mail:
            key = secrets.token_urlsafe(24)
            drill.intake_key = _digest(key)  # a run that died before filing left an older key: this one replaces it
        elif filed is None:
            token = identity.create_token(
                session, clock, person_id=requester.id, name=f"drill {drill.id}"[:100],
                scopes=("tickets:read", "tickets:write"),
            )  # fmt: skip
    outcome: int | str
    if filed is not None:
        outcome = filed
    elif key is not None:
        outcome = _file_by_mail(drill_id, key, requester.email, subject, priority)
    else:
        outcome = _file_through_api(token.plain, subject, priority)  # type: ignore[union-attr]
    with ctx.session_factory() as session, session.begin():
        drill = session.scalar(select(DrillRow).where(DrillRow.id == drill_id).with_for_update())
        if token is not None:
            identity.revoke_token(session, clock, _DESK, token.id)  # the drill customer files once per drill
        if drill is not None:
            drill.intake_key = None  # an e-mail drill's key vouched for one mail; it is spent either way
        if drill is None or drill.state != "filing":
            ctx.finish(session)
            return
        now = clock.now()
        if isinstance(outcome, str):
            log.warning("drill %s: %s", drill.id, outcome)
            _done(drill, now, outcome)
            ctx.finish(session)
            return
        _record(session, drill, outcome)
        drill.state = "running"
        drill.started_at = now
        due = now + timedelta(minutes=drill.window_minutes)
        enqueue(session, EVALUATE_JOB, {"drill": drill.id}, due_at=due, dedup_key=f"drill.evaluate:{drill.id}")
        ctx.finish(session)


def _record(session: Session, drill: DrillRow, ticket_id: int) -> None:
    """Register the drill's ticket and, once it paged, its on-duty incident."""
    from zhiban.tickets import service as tickets

    drill.ticket_id = ticket_id
    on_duty = tickets.on_duty_of(session, ticket_id)
    if on_duty is not None and drill.incident_id is None:
        drill.incident_id = on_duty.incident_id


def _target(session: Session, plan_key: str) -> timedelta | None:
    try:
        plan = _plan(session, plan_key)
    except InvalidInput:
        return None
    for target in plan.targets.get("P1", []):
        if target.get("metric") == "first_response":
            return timedelta(minutes=float(target["minutes"]))
    return None


def observe(session: Session, drill: DrillRow, now: datetime) -> Observation:
    """What the tables say about a drill up to `now`, with why a ticket that did not page was not meant to."""
    from zhiban.sla import service as sla
    from zhiban.sla.model import SupportMode

    seen = queries.observe(session, drill, now, _target(session, drill.plan))
    if seen.paged_at is not None or seen.ticket_created_at is None or drill.ticket_id is None:
        return seen
    ref = _ticket_org(session, drill.ticket_id)
    if ref is None:
        return seen
    terms = sla.support_of(session, drill.plan)
    hours = sla.hours_at(session, FrozenClock(now), ref, seen.ticket_created_at)
    if terms.mode == SupportMode.DEDICATED and hours == "business":
        why = "in business hours a dedicated plan hands tickets to the dedicated contact: drill it out of hours"
        return replace(seen, timeline_problems=(*seen.timeline_problems, why))
    return seen


def _ticket_org(session: Session, ticket_id: int) -> Organization | None:
    from zhiban.tickets import service as tickets

    ref = tickets.ref(session, ticket_id)
    return identity.organization(session, ref.organization_id) if ref is not None else None


def evaluate_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `drill.evaluate` timer: judge the drill, then solve its ticket (which resolves its page)."""
    from zhiban.incidents import service as incidents
    from zhiban.tickets import service as tickets

    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        drill = session.scalar(select(DrillRow).where(DrillRow.id == str(payload.get("drill"))).with_for_update())
        if drill is None or drill.state != "running":
            ctx.finish(session)
            return
        now = clock.now()
        if drill.ticket_id is not None:
            _record(session, drill, drill.ticket_id)  # a page that came late (a raised priority) is the drill's too
        drill.result = evaluate(observe(session, drill, now)).to_json()
        drill.state = "done"
        drill.finished_at = now
        found = drill.ticket_id is not None and tickets.ref(session, drill.ticket_id) is not None
        ticket = tickets.get_ticket(session, _DESK, drill.ticket_id).ticket if found and drill.ticket_id else None
        if ticket is not None and ticket.status not in ("solved", "closed"):
            tickets.change_status(session, clock, _DESK, ticket.id, "solved")
        if drill.incident_id:  # solving resolved it through zhiban.duty; a desk without that hook still stops paging
            incidents.close_for_ticket(session, clock, drill.ticket_id or 0, via="drill finished")
        ctx.finish(session)
