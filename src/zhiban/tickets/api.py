"""Ticket API: validate, call the service, serialize."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from zhiban.core.errors import InvalidInput
from zhiban.tickets import saved_views, search, service
from zhiban.tickets.model import MAX_QUERY_CHARS, Channel, OnDuty, TicketQuery
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, reads_only
from zhiban.web.fields import Ident, Limit, LongText, Offset, ShortText, TicketId, ViewId
from zhiban.web.scopes import by_method

if TYPE_CHECKING:
    from zhiban.tickets.store import CommentRow, TicketRow

router = APIRouter(
    prefix="/api/v1/tickets", tags=["tickets"], dependencies=[by_method("tickets:read", "tickets:write")]
)
views_router = APIRouter(
    prefix="/api/v1/views", tags=["tickets"], dependencies=[by_method("tickets:read", "tickets:write")]
)

PriorityIn = Literal["P1", "P2", "P3", "P4"]
StatusIn = Literal["new", "open", "pending", "on_hold", "solved", "closed"]


class TicketIn(BaseModel):
    subject: ShortText
    body: LongText
    priority: PriorityIn = "P3"
    category: Ident | None = None
    requester_id: Ident | None = Field(None, description="customer user the ticket is for (agents only)")


class OnDutyOut(BaseModel):
    """The engineer on duty woken for this ticket: when paged, and who acknowledged when (null until then)."""

    incident_id: str
    paged_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="display name of who acknowledged")

    @classmethod
    def of(cls, d: OnDuty | None) -> OnDutyOut | None:
        if d is None:
            return None
        return cls(
            incident_id=d.incident_id,
            paged_at=d.paged_at,
            acknowledged_at=d.acknowledged_at,
            acknowledged_by=d.acknowledged_by,
        )


class TicketOut(BaseModel):
    id: int
    organization_id: str
    requester_id: str
    subject: str
    status: str
    priority: str
    channel: str
    category: str | None
    assignee_id: str | None
    created_at: datetime
    updated_at: datetime
    on_duty: OnDutyOut | None = Field(description="null unless an engineer on duty was paged for this ticket")

    @classmethod
    def of(cls, t: TicketRow, on_duty: OnDuty | None = None) -> TicketOut:
        return cls(
            id=t.id,
            organization_id=t.organization_id,
            requester_id=t.requester_id,
            subject=t.subject,
            status=t.status,
            priority=t.priority,
            channel=t.channel,
            category=t.category,
            assignee_id=t.assignee_id,
            created_at=t.created_at,
            updated_at=t.updated_at,
            on_duty=OnDutyOut.of(on_duty),
        )


class CommentIn(BaseModel):
    body: LongText
    public: bool = True


class CommentOut(BaseModel):
    id: int
    author_id: str
    body: str
    public: bool
    created_at: datetime

    @classmethod
    def of(cls, c: CommentRow) -> CommentOut:
        return cls(id=c.id, author_id=c.author_id, body=c.body, public=c.public, created_at=c.created_at)


class TicketDetail(TicketOut):
    comments: list[CommentOut]


class StatusIn_(BaseModel):
    status: StatusIn


class TicketPatch(BaseModel):
    priority: PriorityIn | None = None
    assignee_id: Ident | None = None
    unassign: bool = False


@router.post("", status_code=201, response_model=TicketOut, summary="File a ticket")
def create(body: TicketIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, response: Response) -> TicketOut:
    principal.require_scope("tickets:write")
    ticket = service.create_ticket(
        session,
        clock,
        principal,
        subject=body.subject,
        body=body.body,
        priority=body.priority,
        channel=Channel.API,
        category=body.category,
        requester_id=body.requester_id,
    )
    response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
    return TicketOut.of(ticket, service.on_duty_of_filed(session, ticket.id))


@router.get(
    "",
    response_model=list[TicketOut],
    summary="List or search the tickets the caller may see",
    description="`q` searches subjects and messages (Chinese and English; every word must match; agents' searches "
    "read internal notes too, customers' never) and orders by best match; without `q`, newest first. Every other "
    "parameter narrows the list; `status` and `priority` take comma-separated values.",
)
@reads_only
def list_(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    status: Annotated[str | None, Query(max_length=64, description="e.g. open,pending")] = None,
    open_only: bool = Query(False, alias="open"),
    priority: Annotated[str | None, Query(max_length=16, description="e.g. P1,P2")] = None,
    organization_id: Ident | None = None,
    plan: Ident | None = None,
    assignee: Annotated[Ident | None, Query(description="a person's id, `me` or `none`")] = None,
    team: Annotated[str | None, Query(max_length=100, description="a team's id or name, or `none`")] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    updated_from: datetime | None = None,
    updated_to: datetime | None = None,
    idle_days: Annotated[int | None, Query(ge=1, le=3650, description="not changed for at least N days")] = None,
    breaching_within_hours: Annotated[float | None, Query(gt=0, le=720, description="an SLA clock due soon")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[TicketOut]:
    principal.require_scope("tickets:read")
    params = {
        "q": q,
        "status": status,
        "open_only": open_only,
        "priority": priority,
        "organization_id": organization_id,
        "plan": plan,
        "assignee": assignee,
        "team": team,
        "channel": channel,
        "created_from": created_from,
        "created_to": created_to,
        "updated_from": updated_from,
        "updated_to": updated_to,
        "idle_days": idle_days,
        "breaching_within_hours": breaching_within_hours,
    }
    query = TicketQuery.from_params({k: v for k, v in params.items() if v is not None})
    rows = search.find_tickets(session, principal, query, clock.now(), limit=limit, offset=offset)
    return _outs(session, rows)


def _outs(session: DB, rows: list[TicketRow]) -> list[TicketOut]:
    on_duty = service.on_duty(session, [t.id for t in rows])
    return [TicketOut.of(t, on_duty.get(t.id)) for t in rows]


def _detail(view: service.TicketView) -> TicketDetail:
    return TicketDetail(
        **TicketOut.of(view.ticket, view.on_duty).model_dump(), comments=[CommentOut.of(c) for c in view.comments]
    )


@router.get("/{ticket_id}", response_model=TicketDetail, summary="One ticket with its conversation")
@reads_only
def get(session: DB, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketDetail:
    principal.require_scope("tickets:read")
    return _detail(service.get_ticket(session, principal, ticket_id))


@router.post("/{ticket_id}/comments", status_code=201, response_model=CommentOut, summary="Reply or add a note")
def comment(
    body: CommentIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> CommentOut:
    principal.require_scope("tickets:write")
    return CommentOut.of(service.add_comment(session, clock, principal, ticket_id, body=body.body, public=body.public))


@router.post("/{ticket_id}/status", response_model=TicketOut, summary="Change the status")
def set_status(
    body: StatusIn_, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> TicketOut:
    principal.require_scope("tickets:write")
    ticket = service.change_status(session, clock, principal, ticket_id, body.status)
    return TicketOut.of(ticket, service.on_duty_of(session, ticket.id))


@router.patch(
    "/{ticket_id}",
    response_model=TicketOut,
    summary="Change priority or assignee (agents; a customer may raise the priority of an open ticket)",
)
def patch(
    body: TicketPatch, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> TicketOut:
    principal.require_scope("tickets:write")
    if body.unassign or body.assignee_id is not None:
        principal.require_staff()  # before any change: a refused request changes nothing
    ticket = service.get_ticket(session, principal, ticket_id).ticket
    if body.priority is not None:
        ticket = service.change_priority(session, clock, principal, ticket_id, body.priority)
    if body.unassign or body.assignee_id is not None:
        ticket = service.assign(session, clock, principal, ticket_id, None if body.unassign else body.assignee_id)
    return TicketOut.of(ticket, service.on_duty_of(session, ticket.id))


# --- saved views -------------------------------------------------------------------------------------------


class ViewIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    shared: bool = Field(False, description="every agent sees it (agents only)")
    query: dict[str, Any] = Field(
        default_factory=dict,
        description="the list's parameters, as GET /api/v1/tickets takes them (q, status, priority, assignee, …)",
        json_schema_extra={"maxProperties": 20},
    )


class ViewPatch(BaseModel):
    name: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    shared: bool | None = None
    query: dict[str, Any] | None = Field(None, json_schema_extra={"maxProperties": 20})


class ViewOut(BaseModel):
    id: int
    owner_id: str
    name: str
    shared: bool
    query: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, v: saved_views.SavedView) -> ViewOut:
        return cls(
            id=v.id,
            owner_id=v.owner_id,
            name=v.name,
            shared=v.shared,
            query=v.query.to_params(),
            created_at=v.created_at,
            updated_at=v.updated_at,
        )


def _query(params: dict[str, Any]) -> TicketQuery:
    if len(params) > 20:
        raise InvalidInput("a view has at most 20 parameters")
    return TicketQuery.from_params(params)


@views_router.get("", response_model=list[ViewOut], summary="My saved views, and (agents) the shared ones")
@reads_only
def list_views(session: DB, principal: CurrentPrincipal) -> list[ViewOut]:
    return [ViewOut.of(v) for v in saved_views.list_views(session, principal)]


@views_router.post("", status_code=201, response_model=ViewOut, summary="Save a view of the ticket list")
def create_view(body: ViewIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, response: Response) -> ViewOut:
    view = saved_views.create_view(
        session, clock, principal, name=body.name, query=_query(body.query), shared=body.shared
    )
    response.headers["Location"] = f"/api/v1/views/{view.id}"
    return ViewOut.of(view)


@views_router.get("/{view_id}", response_model=ViewOut, summary="One saved view")
@reads_only
def get_view(session: DB, principal: CurrentPrincipal, view_id: ViewId) -> ViewOut:
    return ViewOut.of(saved_views.get_view(session, principal, view_id))


@views_router.patch("/{view_id}", response_model=ViewOut, summary="Rename, re-filter or (un)share a view")
def update_view(body: ViewPatch, session: DB, clock: ClockDep, principal: CurrentPrincipal, view_id: ViewId) -> ViewOut:
    query = _query(body.query) if body.query is not None else None
    view = saved_views.update_view(session, clock, principal, view_id, name=body.name, query=query, shared=body.shared)
    return ViewOut.of(view)


@views_router.delete("/{view_id}", status_code=204, summary="Delete a view (its owner, or an admin if shared)")
def delete_view(session: DB, principal: CurrentPrincipal, view_id: ViewId) -> Response:
    saved_views.delete_view(session, principal, view_id)
    return Response(status_code=204)


@views_router.get("/{view_id}/tickets", response_model=list[TicketOut], summary="The tickets a view finds now")
@reads_only
def view_tickets(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, view_id: ViewId, limit: Limit = 50, offset: Offset = 0
) -> list[TicketOut]:
    principal.require_scope("tickets:read")
    _, rows = saved_views.run_view(session, clock, principal, view_id, limit=limit, offset=offset)
    return _outs(session, rows)


# The feature's one router (what the app includes): the ticket routes above and the saved views.
tickets_router, router = router, APIRouter()
router.include_router(tickets_router)
router.include_router(views_router)
