"""Ticket API: validate, call the service, serialize."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from zhiban.core.errors import InvalidInput
from zhiban.identity import service as identity
from zhiban.tickets import attachment_api, attachments, ownership, saved_views, search, service
from zhiban.tickets.attachment_api import AttachmentOut
from zhiban.tickets.intake import Filing, TicketIntake, intake_for
from zhiban.tickets.model import (
    MAX_CHANNEL_NAME,
    MAX_PLATFORM,
    MAX_QUERY_CHARS,
    MAX_SDK_VERSION,
    MAX_TAG,
    MAX_TAGS,
    MAX_USER_ID,
    MAX_USER_IDS,
    Channel,
    OnDuty,
    RtcFields,
    TicketQuery,
    clean_fields,
)
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of, reads_only, release, writes_elsewhere
from zhiban.web.fields import Ident, Limit, LongText, Offset, ShortText, TicketId, ViewId
from zhiban.web.scopes import by_method

if TYPE_CHECKING:
    from zhiban.tickets.store import AttachmentRow, CommentRow, TicketRow

router = APIRouter(
    prefix="/api/v1/tickets", tags=["tickets"], dependencies=[by_method("tickets:read", "tickets:write")]
)
views_router = APIRouter(
    prefix="/api/v1/views", tags=["tickets"], dependencies=[by_method("tickets:read", "tickets:write")]
)

PriorityIn = Literal["P1", "P2", "P3", "P4"]
StatusIn = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
Reason = Annotated[str, StringConstraints(max_length=500), Field(description="why (kept in the ticket's log)")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_USER_ID)]


class FieldsIn(BaseModel):
    """A ticket's RTC fields, each optional: what leads the desk to the call's telemetry."""

    app_id: Ident | None = Field(None, description="one of the customer organization's apps (its SDKs' app_id)")
    channel_name: Annotated[str, StringConstraints(max_length=MAX_CHANNEL_NAME)] | None = Field(
        None, description="the channel / room name the SDK joined"
    )
    user_ids: list[UserId] | None = Field(
        None, max_length=MAX_USER_IDS, description=f"user ids in that channel (at most {MAX_USER_IDS})"
    )
    sdk_version: Annotated[str, StringConstraints(max_length=MAX_SDK_VERSION)] | None = Field(
        None, description="SDK version, e.g. 4.3.2"
    )
    platform: Annotated[str, StringConstraints(max_length=MAX_PLATFORM)] | None = Field(
        None, description="e.g. android, ios, web, windows, macos"
    )
    occurred_at: AwareDatetime | None = Field(
        None, description="when it happened, with its UTC offset (stored and answered in UTC); within the last year"
    )

    def cleaned(self, now: datetime) -> RtcFields:
        return clean_fields(**self.model_dump(), now=now)


class FieldsOut(BaseModel):
    """The RTC fields: each null when not given."""

    app_id: str | None
    channel_name: str | None
    user_ids: list[str] | None
    sdk_version: str | None
    platform: str | None
    occurred_at: datetime | None = Field(description="UTC")

    @classmethod
    def of(cls, f: RtcFields | None) -> FieldsOut:
        f = f or RtcFields()
        return cls(
            app_id=f.app_id,
            channel_name=f.channel_name,
            user_ids=list(f.user_ids) or None,
            sdk_version=f.sdk_version,
            platform=f.platform,
            occurred_at=f.occurred_at,
        )


class PersonRef(BaseModel):
    id: str
    name: str = Field(description="display name")


class TicketIn(BaseModel):
    subject: ShortText
    body: LongText
    priority: PriorityIn = "P3"
    category: Ident | None = None
    requester_id: Ident | None = Field(None, description="customer user the ticket is for (agents only)")
    fields: FieldsIn | None = Field(None, description="RTC fields (app, channel, users, SDK, when)")


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
    assignee: PersonRef | None = Field(None, description="who has the ticket (null: nobody)")
    team_id: str | None = None
    fields: FieldsOut = Field(default_factory=lambda: FieldsOut.of(None), description="the RTC fields")
    tags: list[str] = Field(default_factory=list, description="agents' tags (empty for customers)")
    followers: list[PersonRef] = Field(default_factory=list, description="staff following it (empty for customers)")
    related: list[int] = Field(default_factory=list, description="tickets linked as related")
    merged_into: int | None = Field(None, description="the ticket this duplicate was merged into (it is closed)")
    merged_from: list[int] = Field(default_factory=list, description="duplicates merged into this ticket")

    @classmethod
    def of(
        cls,
        t: TicketRow,
        on_duty: OnDuty | None = None,
        *,
        fields: RtcFields | None = None,
        owned: ownership.Ownership | None = None,
        names: dict[str, str] | None = None,
    ) -> TicketOut:
        names = names or {}
        owned = owned or ownership.Ownership()
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
            assignee=PersonRef(id=t.assignee_id, name=names.get(t.assignee_id, "")) if t.assignee_id else None,
            team_id=t.team_id,
            fields=FieldsOut.of(fields),
            tags=list(owned.tags),
            followers=[PersonRef(id=p, name=names.get(p, "")) for p in owned.followers],
            related=list(owned.related),
            merged_into=owned.merged_into,
            merged_from=list(owned.merged_from),
        )


def _outs(session: DB, principal: CurrentPrincipal, rows: list[TicketRow]) -> list[TicketOut]:
    """Tickets as JSON with what ties them to people and tickets: a few batched reads for the whole page."""
    ids = [t.id for t in rows]
    on_duty = service.on_duty(session, ids)
    fields = service.fields_of(session, ids)
    owned = ownership.ownership(session, principal, ids)
    people = {t.assignee_id for t in rows if t.assignee_id} | {p for o in owned.values() for p in o.followers}
    names = identity.names_of(session, people)
    return [
        TicketOut.of(t, on_duty.get(t.id), fields=fields.get(t.id), owned=owned.get(t.id), names=names) for t in rows
    ]


def _out(session: DB, principal: CurrentPrincipal, ticket: TicketRow) -> TicketOut:
    return _outs(session, principal, [ticket])[0]


class CommentIn(BaseModel):
    body: LongText
    public: bool = True


class CommentOut(BaseModel):
    id: int
    author_id: str
    body: str
    public: bool
    created_at: datetime
    attachments: list[AttachmentOut] = Field(default_factory=list, description="files that came with this message")

    @classmethod
    def of(cls, c: CommentRow, files: list[AttachmentRow] | None = None) -> CommentOut:
        return cls(
            id=c.id,
            author_id=c.author_id,
            body=c.body,
            public=c.public,
            created_at=c.created_at,
            attachments=[AttachmentOut.of(f) for f in files or ()],
        )


class TicketDetail(TicketOut):
    comments: list[CommentOut]


class StatusIn_(BaseModel):
    status: StatusIn
    reason: Reason | None = None


class TicketPatch(BaseModel):
    """Change some of a ticket's fields at once (all or nothing). Agents any; a customer may raise the priority
    of an open ticket, solve or reopen it, and set its RTC fields."""

    priority: PriorityIn | None = None
    status: StatusIn | None = None
    assignee_id: Ident | None = None
    unassign: bool = False
    team_id: Ident | None = None
    unassign_team: bool = False
    category: Ident | None = None
    reason: Reason | None = None
    fields: FieldsIn | None = Field(None, description="RTC fields to change: those given (null clears one)")


class AssignIn(BaseModel):
    reason: Reason | None = None


class FollowIn(BaseModel):
    person_id: Ident | None = Field(None, description="an agent or admin (default: the caller)")


class TagsIn(BaseModel):
    tags: list[Tag] = Field(min_length=1, max_length=MAX_TAGS)


class LinkIn(BaseModel):
    ticket_id: int = Field(ge=1, le=2**31 - 1, description="the related ticket (same organization)")


class MergeIn(BaseModel):
    into: int = Field(ge=1, le=2**31 - 1, description="the ticket kept; this one is closed pointing at it")
    reason: Reason | None = None


class EventOut(BaseModel):
    seq: int
    kind: str
    at: datetime
    actor: PersonRef | None = Field(description="who did it (null: the desk itself)")
    data: dict[str, Any]


def _intake(request: Request) -> TicketIntake[TicketOut]:
    desk = desk_of(request)
    return intake_for(request.app.state, lambda: TicketIntake(desk.sessions, desk.clock, TicketOut.of))


@router.post("", status_code=201, response_model=TicketOut, summary="File a ticket")
@writes_elsewhere
def create(
    body: TicketIn, session: DB, clock: ClockDep, request: Request, principal: CurrentPrincipal, response: Response
) -> TicketOut:
    principal.require_scope("tickets:write")
    fields = body.fields.cleaned(clock.now()) if body.fields is not None else None
    release(session)  # the caller is known; the ticket is filed in the intake's transaction, with others of a rush
    filing = Filing(
        principal,
        subject=body.subject,
        body=body.body,
        priority=body.priority,
        channel=Channel.API,
        category=body.category,
        requester_id=body.requester_id,
        fields=fields,
    )
    ticket = _intake(request).commit_blocking(filing)
    response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
    return ticket if fields is None else ticket.model_copy(update={"fields": FieldsOut.of(fields)})


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
    tag: Tag | None = Query(None, description="only tickets with this tag (agents)"),
    app_id: Ident | None = Query(None, description="only tickets about this app"),
    sdk_version: Annotated[str, StringConstraints(max_length=MAX_SDK_VERSION)] | None = Query(
        None, description="only tickets with this SDK version"
    ),
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
        "tag": tag,
        "app_id": app_id,
        "sdk_version": sdk_version,
    }
    query = TicketQuery.from_params({k: v for k, v in params.items() if v is not None})
    rows = search.find_tickets(session, principal, query, clock.now(), limit=limit, offset=offset)
    return _outs(session, principal, rows)


def _detail(session: DB, principal: CurrentPrincipal, view: service.TicketView) -> TicketDetail:
    out = _out(session, principal, view.ticket)
    # Only the messages the caller may read are in the view, so only their files are listed.
    files = attachments.of_comments(session, [c.id for c in view.comments])
    return TicketDetail(**out.model_dump(), comments=[CommentOut.of(c, files.get(c.id)) for c in view.comments])


@router.get("/{ticket_id}", response_model=TicketDetail, summary="One ticket with its conversation")
@reads_only
def get(session: DB, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketDetail:
    principal.require_scope("tickets:read")
    return _detail(session, principal, service.get_ticket(session, principal, ticket_id))


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
    ticket = service.change_status(session, clock, principal, ticket_id, body.status, reason=body.reason)
    return _out(session, principal, ticket)


@router.patch(
    "/{ticket_id}",
    response_model=TicketOut,
    summary="Change priority, status, assignee, team, category or RTC fields, with a reason (all or nothing)",
)
def patch(
    body: TicketPatch, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> TicketOut:
    principal.require_scope("tickets:write")
    staff_only = body.unassign or body.unassign_team or body.category is not None
    if staff_only or body.assignee_id is not None or body.team_id is not None:
        principal.require_staff()  # before any change: a refused request changes nothing
    ticket = service.get_ticket(session, principal, ticket_id).ticket
    reason = body.reason
    if body.fields is not None and body.fields.model_fields_set:
        changes = body.fields.model_dump(include=body.fields.model_fields_set)
        ticket = ownership.set_fields(session, clock, principal, ticket_id, changes)
    if body.category is not None:
        ticket = ownership.change_category(session, clock, principal, ticket_id, body.category, reason=reason)
    if body.unassign_team or body.team_id is not None:
        team = None if body.unassign_team else body.team_id
        ticket = ownership.assign_team(session, clock, principal, ticket_id, team, reason=reason)
    if body.priority is not None:
        ticket = service.change_priority(session, clock, principal, ticket_id, body.priority, reason=reason)
    if body.unassign or body.assignee_id is not None:
        assignee = None if body.unassign else body.assignee_id
        ticket = service.assign(session, clock, principal, ticket_id, assignee, reason=reason)
    if body.status is not None and body.status != ticket.status:
        ticket = service.change_status(session, clock, principal, ticket_id, body.status, reason=reason)
    return _out(session, principal, ticket)


@router.post("/{ticket_id}/take", response_model=TicketOut, summary="Take it: assign the ticket to me (agents)")
def take(session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.take(session, clock, principal, ticket_id))


@router.post(
    "/{ticket_id}/auto-assign",
    response_model=TicketOut,
    summary="Assign within the ticket's team by round robin among members in their working hours (agents)",
)
def auto_assign(session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.auto_assign(session, clock, principal, ticket_id))


@router.post("/{ticket_id}/followers", response_model=TicketOut, summary="Follow the ticket (agents)")
def follow(body: FollowIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.follow(session, clock, principal, ticket_id, body.person_id))


@router.delete("/{ticket_id}/followers/{person_id}", response_model=TicketOut, summary="Stop following (agents)")
def unfollow(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    person_id: Annotated[str, Path(max_length=64)],
) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.unfollow(session, clock, principal, ticket_id, person_id))


@router.post("/{ticket_id}/tags", response_model=TicketOut, summary="Tag the ticket (agents)")
def add_tags(body: TagsIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.add_tags(session, clock, principal, ticket_id, body.tags))


@router.delete("/{ticket_id}/tags/{tag}", response_model=TicketOut, summary="Remove a tag (agents)")
def remove_tag(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    tag: Annotated[str, Path(max_length=MAX_TAG)],
) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.remove_tag(session, clock, principal, ticket_id, tag))


@router.post("/{ticket_id}/links", response_model=TicketOut, summary="Link a related ticket of the same organization")
def link(body: LinkIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.link(session, clock, principal, ticket_id, body.ticket_id))


@router.delete("/{ticket_id}/links/{other_id}", response_model=TicketOut, summary="Unlink a related ticket")
def unlink(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    other_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> TicketOut:
    principal.require_scope("tickets:write")
    return _out(session, principal, ownership.unlink(session, clock, principal, ticket_id, other_id))


@router.post(
    "/{ticket_id}/merge",
    response_model=TicketOut,
    summary="Merge this duplicate into another ticket of the same organization (agents): it is closed, pointing there",
)
def merge(body: MergeIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketOut:
    principal.require_scope("tickets:write")
    duplicate = ownership.merge(session, clock, principal, ticket_id, body.into, reason=body.reason)
    return _out(session, principal, duplicate)


@router.get(
    "/{ticket_id}/events", response_model=list[EventOut], summary="The ticket's event log: who did what (agents)"
)
@reads_only
def events(session: DB, principal: CurrentPrincipal, ticket_id: TicketId) -> list[EventOut]:
    principal.require_scope("tickets:read")
    principal.require_staff()
    view = service.get_ticket(session, principal, ticket_id)
    names = identity.names_of(session, {e.actor_id for e in view.events if e.actor_id})
    return [
        EventOut(
            seq=e.id,
            kind=e.kind,
            at=e.at,
            actor=PersonRef(id=e.actor_id, name=names.get(e.actor_id, "")) if e.actor_id else None,
            data=dict(e.data or {}),
        )
        for e in view.events
    ]


router.include_router(attachment_api.router)  # /{ticket_id}/attachments...: upload and download

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
    return _outs(session, principal, rows)


# The feature's one router (what the app includes): the ticket routes above and the saved views.
tickets_router, router = router, APIRouter()
router.include_router(tickets_router)
router.include_router(views_router)
