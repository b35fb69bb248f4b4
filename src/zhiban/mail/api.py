"""Held mail for agents: customer mail that did not authenticate, to release (file it) or discard."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from zhiban.identity.model import Principal
from zhiban.mail import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of
from zhiban.web.scopes import by_method

if TYPE_CHECKING:
    from zhiban.mail.store import HeldMailRow

router = APIRouter(prefix="/api/v1/mail", tags=["mail"], dependencies=[by_method("tickets:read", "tickets:write")])
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


@router.get("/held", response_model=list[HeldMailOut], summary="Mail held because its sender was not authenticated")
def list_held(
    session: DB,
    principal: CurrentPrincipal,
    state: Literal["held", "released", "discarded"] = "held",
    limit: int = Query(100, ge=1, le=500),
) -> list[HeldMailOut]:
    rows = service.list_held_mail(session, _agent(principal, "tickets:read"), state=state, limit=limit)
    return [HeldMailOut.of(row) for row in rows]


@router.post("/held/{held_id}/release", response_model=ReleasedOut, summary="File a held mail as its sender")
def release(
    held_id: HeldId, request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> ReleasedOut:
    agent = _agent(principal, "tickets:write")
    outcome = service.release_held_mail(session, clock, agent, held_id, desk_of(request).settings)
    row = service.get_held_mail(session, agent, held_id)
    return ReleasedOut(held=HeldMailOut.of(row), action=outcome.action, ticket_id=outcome.ticket_id)


@router.post("/held/{held_id}/discard", response_model=HeldMailOut, summary="Drop a held mail")
def discard(held_id: HeldId, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> HeldMailOut:
    return HeldMailOut.of(service.discard_held_mail(session, clock, _agent(principal, "tickets:write"), held_id))
