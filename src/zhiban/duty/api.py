"""On-duty API: a customer asks to wake the engineer on duty for its open ticket."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from zhiban.duty import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import TicketId
from zhiban.web.scopes import needs

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])


class UrgentIn(BaseModel):
    note: str = Field("", max_length=500, description="what is down, in a line")


class UrgentOut(BaseModel):
    incident_id: str
    paged_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


@router.post(
    "/{ticket_id}/urgent",
    response_model=UrgentOut,
    summary="Wake the engineer on duty for this open ticket (plans with on-duty paging; limited per day)",
    dependencies=[needs("tickets:write")],
)
def urgent(body: UrgentIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> UrgentOut:
    found = service.request_urgent(session, clock, principal, ticket_id, note=body.note)
    return UrgentOut(
        incident_id=found.incident_id,
        paged_at=found.paged_at,
        acknowledged_at=found.acknowledged_at,
        acknowledged_by=found.acknowledged_by,
    )
