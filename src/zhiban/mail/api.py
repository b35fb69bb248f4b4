"""Held mail for agents (customer mail that did not authenticate, to release or discard), and the support
mailboxes read over IMAP for admins (configuration, cursor, last success and failure; passwords never shown)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field, SecretStr

from zhiban.identity.model import Principal
from zhiban.mail import mailboxes, service
from zhiban.mail.model import (
    MAX_INBOUND_BYTES,
    MAX_POLL_SECONDS,
    MIN_MESSAGE_BYTES,
    MIN_POLL_SECONDS,
    MailboxSettings,
)
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of
from zhiban.web.fields import Ident
from zhiban.web.scopes import by_method, needs

if TYPE_CHECKING:
    from zhiban.mail.store import HeldMailRow, MailboxRow

held_mail = APIRouter(prefix="/api/v1/mail", tags=["mail"], dependencies=[by_method("tickets:read", "tickets:write")])
boxes = APIRouter(prefix="/api/v1/mail/mailboxes", tags=["mail"], dependencies=[needs("admin")])
HeldId = Annotated[int, Path(ge=1, le=2**31 - 1, description="number of the held mail")]


class HeldMailOut(BaseModel):
    id: int
    sender: str
    subject: str
    reason: str
    organization_id: str | None
    state: str
    received_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    ticket_id: int | None

    @classmethod
    def of(cls, row: HeldMailRow) -> HeldMailOut:
        return cls(
            id=row.id,
            sender=row.sender,
            subject=row.subject,
            reason=row.reason,
            organization_id=row.organization_id,
            state=row.state,
            received_at=row.received_at,
            decided_at=row.decided_at,
            decided_by=row.decided_by,
            ticket_id=row.ticket_id,
        )


class ReleasedOut(BaseModel):
    held: HeldMailOut
    action: str  # created or replied
    ticket_id: int | None


def _agent(principal: Principal, scope: str) -> Principal:
    principal.require_staff()
    principal.require_scope(scope)
    return principal


@held_mail.get("/held", response_model=list[HeldMailOut], summary="Mail held because its sender was not authenticated")
def list_held(
    session: DB,
    principal: CurrentPrincipal,
    state: Literal["held", "released", "discarded"] = "held",
    limit: int = Query(100, ge=1, le=500),
) -> list[HeldMailOut]:
    rows = service.list_held_mail(session, _agent(principal, "tickets:read"), state=state, limit=limit)
    return [HeldMailOut.of(row) for row in rows]


@held_mail.post("/held/{held_id}/release", response_model=ReleasedOut, summary="File a held mail as its sender")
def release(
    held_id: HeldId, request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> ReleasedOut:
    agent = _agent(principal, "tickets:write")
    outcome = service.release_held_mail(session, clock, agent, held_id, desk_of(request).settings)
    row = service.get_held_mail(session, agent, held_id)
    return ReleasedOut(held=HeldMailOut.of(row), action=outcome.action, ticket_id=outcome.ticket_id)


@held_mail.post("/held/{held_id}/discard", response_model=HeldMailOut, summary="Drop a held mail")
def discard(held_id: HeldId, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> HeldMailOut:
    return HeldMailOut.of(service.discard_held_mail(session, clock, _agent(principal, "tickets:write"), held_id))


# --- support mailboxes (admins) -----------------------------------------------------------------


class MailboxIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    address: str = Field(min_length=3, max_length=254, description="what customers write to; replies come from it")
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(993, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "tls"
    username: str = Field(min_length=1, max_length=254)
    password: SecretStr = Field(min_length=1, max_length=500)
    folder: str = Field("INBOX", min_length=1, max_length=200)
    move_to: str | None = Field(None, min_length=1, max_length=200, description="else filed mail is flagged \\Seen")
    authserv_id: str = Field("", max_length=200, description="the provider's trusted Authentication-Results id")
    poll_seconds: int = Field(60, ge=MIN_POLL_SECONDS, le=MAX_POLL_SECONDS)
    max_message_bytes: int = Field(MAX_INBOUND_BYTES, ge=MIN_MESSAGE_BYTES, le=MAX_INBOUND_BYTES)
    idle: bool = True
    skip_existing: bool = Field(False, description="the first poll leaves the mail already in the folder alone")


class MailboxOut(BaseModel):
    id: str
    name: str
    address: str
    host: str
    port: int
    security: str
    username: str
    folder: str
    move_to: str | None
    authserv_id: str
    poll_seconds: int
    max_message_bytes: int
    idle: bool
    uidvalidity: int | None
    last_uid: int
    filed: int
    refused: int
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: MailboxRow) -> MailboxOut:
        # The password is never shown back.
        return cls(
            id=row.id,
            name=row.name,
            address=row.address,
            host=row.host,
            port=row.port,
            security=row.security,
            username=row.username,
            folder=row.folder,
            move_to=row.move_to,
            authserv_id=row.authserv_id,
            poll_seconds=row.poll_seconds,
            max_message_bytes=row.max_message_bytes,
            idle=row.idle,
            uidvalidity=row.uidvalidity,
            last_uid=row.last_uid,
            filed=row.filed,
            refused=row.refused,
            last_success_at=row.last_success_at,
            last_error=row.last_error,
            last_error_at=row.last_error_at,
            created_at=row.created_at,
        )


@boxes.get("", response_model=list[MailboxOut], summary="Support mailboxes read over IMAP (admins)")
def list_mailboxes(session: DB, principal: CurrentPrincipal) -> list[MailboxOut]:
    return [MailboxOut.of(row) for row in mailboxes.list_mailboxes(session, principal)]


@boxes.post("", status_code=201, response_model=MailboxOut, summary="Read a support mailbox (admins)")
def add_mailbox(body: MailboxIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> MailboxOut:
    box = MailboxSettings(
        name=body.name,
        address=body.address,
        host=body.host,
        port=body.port,
        security=body.security,
        username=body.username,
        password=body.password.get_secret_value(),
        folder=body.folder,
        after_filing="move" if body.move_to else "seen",
        move_to=body.move_to,
        authserv_id=body.authserv_id,
        poll_seconds=body.poll_seconds,
        max_message_bytes=body.max_message_bytes,
        idle=body.idle,
        skip_existing=body.skip_existing,
    )
    return MailboxOut.of(mailboxes.add_mailbox(session, clock, principal, box))


@boxes.get("/{mailbox_id}", response_model=MailboxOut, summary="One support mailbox (admins)")
def get_mailbox(mailbox_id: Ident, session: DB, principal: CurrentPrincipal) -> MailboxOut:
    return MailboxOut.of(mailboxes.get_mailbox(session, principal, mailbox_id))


@boxes.post("/{mailbox_id}/poll", response_model=MailboxOut, summary="Poll a support mailbox now (admins)")
def poll_mailbox(mailbox_id: Ident, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> MailboxOut:
    return MailboxOut.of(mailboxes.poll_now(session, clock, principal, mailbox_id))


@boxes.delete("/{mailbox_id}", status_code=204, summary="Stop reading a support mailbox (admins)")
def remove_mailbox(mailbox_id: Ident, session: DB, principal: CurrentPrincipal) -> Response:
    mailboxes.remove_mailbox(session, principal, mailbox_id)
    return Response(status_code=204)


router = APIRouter()
router.include_router(held_mail)
router.include_router(boxes)
