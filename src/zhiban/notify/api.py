"""Contact methods and notification rules of on-call staff, and the delivery state of messages."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from zhiban.core.errors import Forbidden
from zhiban.identity.model import Principal
from zhiban.notify import inbox_api, outbox, service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident
from zhiban.web.scopes import by_method

if TYPE_CHECKING:  # rows notify.service and notify.outbox hand over, only read here
    from zhiban.notify.store import ContactMethodRow, NotificationRow

# Paging settings and the outbox (on-call scopes); the inbox has its own router (tickets scopes), mounted below.
paging = APIRouter(prefix="/api/v1", tags=["notify"], dependencies=[by_method("oncall:read", "oncall:write")])


def paged_person(principal: Principal, person_id: str | None) -> str:
    """Staff manage their own methods; admins anyone's; customers none (they are never paged)."""
    principal.require_staff()
    if person_id and person_id != principal.person_id:
        principal.require_admin()
        return person_id
    return principal.person_id


class ContactMethodIn(BaseModel):
    channel: Literal["email", "webhook", "slack", "feishu", "dingtalk", "wecom", "sms", "voice"]
    config: dict[str, Any] = Field(description="destination config of the channel type")
    label: str = Field("", max_length=200)
    person_id: Ident | None = None


class ContactMethodOut(BaseModel):
    id: str
    person_id: str
    channel: str
    label: str

    @classmethod
    def of(cls, row: ContactMethodRow) -> ContactMethodOut:
        # Configs hold secrets (webhook secrets, robot tokens): never shown back.
        return cls(id=row.id, person_id=row.person_id, channel=row.channel, label=row.label)


@paging.get("/contact-methods", response_model=list[ContactMethodOut], summary="Your contact methods")
def list_methods(session: DB, principal: CurrentPrincipal, person_id: Ident | None = None) -> list[ContactMethodOut]:
    return [ContactMethodOut.of(r) for r in service.contact_methods_of(session, paged_person(principal, person_id))]


@paging.post("/contact-methods", status_code=201, response_model=ContactMethodOut, summary="Add a contact method")
def add_method(body: ContactMethodIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> ContactMethodOut:
    person = paged_person(principal, body.person_id)
    row = service.add_contact_method(
        session, clock, person_id=person, channel=body.channel, config=body.config, label=body.label
    )
    return ContactMethodOut.of(row)


class RuleIn(BaseModel):
    contact_method_id: Ident
    delay_minutes: int = Field(0, ge=0, le=1440)
    urgency: Literal["any", "high", "low"] = "any"
    person_id: Ident | None = None


class RuleOut(BaseModel):
    id: str
    contact_method_id: str
    delay_minutes: int
    urgency: str


@paging.get("/notification-rules", response_model=list[RuleOut], summary="Your notification rules")
def list_rules(session: DB, principal: CurrentPrincipal, person_id: Ident | None = None) -> list[RuleOut]:
    rows = service.rules_of(session, paged_person(principal, person_id))
    return [
        RuleOut(id=r.id, contact_method_id=r.contact_method_id, delay_minutes=r.delay_minutes, urgency=r.urgency)
        for r in rows
    ]


@paging.post("/notification-rules", status_code=201, response_model=RuleOut, summary="Add a notification rule")
def add_rule(body: RuleIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> RuleOut:
    person = paged_person(principal, body.person_id)
    r = service.add_notification_rule(
        session,
        clock,
        person_id=person,
        contact_method_id=body.contact_method_id,
        delay_minutes=body.delay_minutes,
        urgency=body.urgency,
    )
    return RuleOut(id=r.id, contact_method_id=r.contact_method_id, delay_minutes=r.delay_minutes, urgency=r.urgency)


class NotificationOut(BaseModel):
    id: str
    idempotency_key: str
    kind: str
    subject_kind: str
    subject_id: str
    ticket_id: int | None
    person_id: str | None
    channel: str
    # E-mail recipients only: other destinations' configs hold secrets (webhook secrets, robot tokens).
    to: list[str]
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    due_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, r: NotificationRow) -> NotificationOut:
        config = r.destination.get("config") or {}
        to = [str(a) for a in config.get("to", [])] if r.channel == "email" else []
        return cls(
            id=r.id,
            idempotency_key=r.idempotency_key,
            kind=r.kind,
            subject_kind=r.subject_kind,
            subject_id=r.subject_id,
            ticket_id=r.ticket_id,
            person_id=r.person_id,
            channel=r.channel,
            to=to,
            state=r.state,
            attempts=r.attempts,
            last_error=r.last_error,
            created_at=r.created_at,
            due_at=r.due_at,
            sent_at=r.sent_at,
        )


@paging.get(
    "/notifications",
    response_model=list[NotificationOut],
    summary="The outbox: delivery state of messages about a subject, or (admins) of every kind",
)
def list_notifications(
    session: DB,
    principal: CurrentPrincipal,
    subject_id: Ident | None = None,
    subject_kind: Ident = "incident",
    kind: str | None = Query(None, max_length=64, description="a kind (sla.breach) or a family (sla)"),
    state: Literal["pending", "sending", "sent", "failed", "cancelled"] | None = None,
    ticket_id: int | None = Query(None, ge=1, le=2**31 - 1),
    limit: int = Query(100, ge=1, le=outbox.MAX_LIST),
) -> list[NotificationOut]:
    if not principal.is_staff:
        raise Forbidden("delivery state is for agents and admins")
    if subject_id is not None:
        return [NotificationOut.of(r) for r in service.notifications_of(session, subject_kind, subject_id)]
    # Every message of the desk, to customers too: the whole outbox is for admins.
    principal.require_admin()
    rows = outbox.recent(session, kind=kind, state=state, ticket_id=ticket_id, limit=limit)
    return [NotificationOut.of(r) for r in rows]


router = APIRouter()
router.include_router(paging)
router.include_router(inbox_api.router)
