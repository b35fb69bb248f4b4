"""Chat groups over HTTP: the platforms' event endpoints (their own signatures, no person's token) and the
admins' configuration (apps, bound groups, mapped users, the last events acted on).

The event endpoints answer 200 for every verified event, acted on or not (`action` says which: a group not
bound is `unbound`, with no effect), so the platform does not retry it; what is not the platform's own gets
401 problem JSON, what cannot be read 413/422, a group over its rate 429 (the platform retries later).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from zhiban.chat import service
from zhiban.chat.model import MAX_EVENT_BYTES
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Limit
from zhiban.web.limits import read_capped
from zhiban.web.scopes import PUBLIC, needs

if TYPE_CHECKING:
    from zhiban.chat.store import ChatAppRow, ChatEventRow, ChatGroupRow, ChatMessageRow

events = APIRouter(prefix="/api/v1/chat", tags=["chat"], dependencies=[PUBLIC])
admin = APIRouter(prefix="/api/v1/chat", tags=["chat"], dependencies=[needs("admin")])
reads = APIRouter(prefix="/api/v1/chat", tags=["chat"], dependencies=[needs("tickets:read")])
PlatformName = Literal["slack", "feishu", "dingtalk"]
PlatformId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@$+/=-]+$")]
Words = Annotated[list[Annotated[str, Field(min_length=1, max_length=40)]], Field(max_length=20)]
# The events are read raw (their signatures are over the bytes); documented as the JSON object they are.
_EVENT_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
}
_HEADERS = (
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-lark-signature",
    "x-lark-request-timestamp",
    "x-lark-request-nonce",
    "timestamp",  # DingTalk
    "sign",
)


class EventAnswer(BaseModel):
    ok: bool = True
    action: str
    ticket_id: int | None = None
    reason: str = ""


def _answer(outcome: service.Outcome) -> dict[str, Any]:
    if outcome.challenge is not None:
        return {"challenge": outcome.challenge}  # both platforms' handshake answer
    return EventAnswer(action=outcome.action, ticket_id=outcome.ticket_id, reason=outcome.reason).model_dump()


def _headers(request: Request) -> dict[str, str]:
    return {name: request.headers.get(name, "")[:300] for name in _HEADERS}


@events.post(
    "/slack/events",
    summary="Slack Events API (signing secret v0): mentions and thread replies",
    openapi_extra=_EVENT_BODY,
)
async def slack_events(request: Request, session: DB, clock: ClockDep) -> dict[str, Any]:
    body = await read_capped(request, MAX_EVENT_BYTES)
    outcome = await run_in_threadpool(service.receive_slack, session, clock, _headers(request), body)
    return _answer(outcome)


@events.post(
    "/feishu/events",
    summary="Feishu/Lark event subscription (token, Encrypt Key, X-Lark-Signature)",
    openapi_extra=_EVENT_BODY,
)
async def feishu_events(request: Request, session: DB, clock: ClockDep) -> dict[str, Any]:
    body = await read_capped(request, MAX_EVENT_BYTES)
    outcome = await run_in_threadpool(service.receive_feishu, session, clock, _headers(request), body)
    return _answer(outcome)


@events.post(
    "/dingtalk/events",
    summary="DingTalk robot callback (timestamp + HMAC-SHA256 sign with the app secret)",
    openapi_extra=_EVENT_BODY,
)
async def dingtalk_events(request: Request, session: DB, clock: ClockDep) -> dict[str, Any]:
    body = await read_capped(request, MAX_EVENT_BYTES)
    outcome = await run_in_threadpool(service.receive_dingtalk, session, clock, _headers(request), body)
    return _answer(outcome)


class AppIn(BaseModel):
    """A platform app's settings; secrets are write-only. Slack: signing_secret, bot_token. Feishu: app_id,
    app_secret, verification_token, encrypt_key. DingTalk: app_secret (the robot's), app_id (its robotCode).
    All: bot_user_id (the bot's own id); Slack and Feishu: api_url (tests, proxies)."""

    model_config = {"extra": "forbid"}
    signing_secret: str | None = Field(None, max_length=500)
    bot_token: str | None = Field(None, max_length=500)
    app_id: str | None = Field(None, max_length=128)
    app_secret: str | None = Field(None, max_length=500)
    verification_token: str | None = Field(None, max_length=500)
    encrypt_key: str | None = Field(None, max_length=500)
    bot_user_id: str | None = Field(None, max_length=128)
    api_url: str | None = Field(None, max_length=500)


class AppOut(BaseModel):
    platform: str
    app_id: str
    bot_user_id: str
    api_url: str
    secrets_set: list[str]  # which secrets are set (never their values)
    updated_at: datetime

    @classmethod
    def of(cls, row: ChatAppRow) -> AppOut:
        secret_names = ("signing_secret", "bot_token", "app_secret", "verification_token", "encrypt_key")
        return cls(
            platform=row.platform,
            app_id=row.app_id,
            bot_user_id=row.bot_user_id,
            api_url=row.api_url,
            secrets_set=[name for name in secret_names if getattr(row, name)],
            updated_at=row.updated_at,
        )


@admin.get("/apps", response_model=list[AppOut], summary="The chat platforms' apps (admins; secrets never shown)")
def list_apps(session: DB, principal: CurrentPrincipal) -> list[AppOut]:
    return [AppOut.of(row) for row in service.apps(session, principal)]


@admin.put("/apps/{platform}", response_model=AppOut, summary="Configure a chat platform's app (admins)")
def put_app(
    platform: Annotated[PlatformName, Path()], body: AppIn, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> AppOut:
    fields = body.model_dump(exclude_unset=True)
    return AppOut.of(service.set_app(session, clock, principal, platform, fields))


class GroupIn(BaseModel):
    model_config = {"extra": "forbid"}
    platform: PlatformName
    group_id: PlatformId = Field(description="Slack channel id (C…) or Feishu chat id (oc_…)")
    organization: str = Field(min_length=1, max_length=64, description="organization id or slug")
    requester: str | None = Field(
        None, max_length=254, description="customer user (id or e-mail) who files for unmapped users"
    )
    keywords: Words | None = None
    urgent_words: Words | None = Field(None, description="words that raise the ticket to P1 (default: the desk's)")
    name: str = Field("", max_length=200)


class GroupOut(BaseModel):
    id: str
    platform: str
    group_id: str
    name: str
    organization_id: str
    requester_id: str | None
    keywords: list[str]
    urgent_words: list[str] | None
    created_at: datetime

    @classmethod
    def of(cls, row: ChatGroupRow) -> GroupOut:
        return cls(
            id=row.id,
            platform=row.platform,
            group_id=row.group_id,
            name=row.name,
            organization_id=row.organization_id,
            requester_id=row.requester_id,
            keywords=list(row.keywords or ()),
            urgent_words=None if row.urgent_words is None else list(row.urgent_words),
            created_at=row.created_at,
        )


@admin.get("/groups", response_model=list[GroupOut], summary="Chat groups bound to organizations (admins)")
def list_groups(session: DB, principal: CurrentPrincipal) -> list[GroupOut]:
    return [GroupOut.of(row) for row in service.groups(session, principal)]


@admin.post("/groups", status_code=201, response_model=GroupOut, summary="Bind a chat group to an organization")
def bind_group(body: GroupIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> GroupOut:
    row = service.bind_group(
        session,
        clock,
        principal,
        platform=body.platform,
        group_id=body.group_id,
        organization=body.organization,
        requester=body.requester,
        keywords=body.keywords,
        urgent_words=body.urgent_words,
        name=body.name,
    )
    return GroupOut.of(row)


@admin.delete("/groups/{group_ref}", status_code=204, summary="Unbind a chat group (id or platform:group_id)")
def unbind_group(
    group_ref: Annotated[str, Path(min_length=1, max_length=150)], session: DB, principal: CurrentPrincipal
) -> Response:
    service.unbind_group(session, principal, group_ref)
    return Response(status_code=204)


class PersonIn(BaseModel):
    model_config = {"extra": "forbid"}
    platform: PlatformName
    user_id: PlatformId = Field(description="Slack user id (U…) or Feishu open_id (ou_…)")
    person: str = Field(min_length=1, max_length=254, description="customer user id or e-mail")


class PersonOut(BaseModel):
    platform: str
    user_id: str
    person_id: str


@admin.put("/people", response_model=PersonOut, summary="Know a chat user as a customer user (admins)")
def map_person(body: PersonIn, session: DB, principal: CurrentPrincipal) -> PersonOut:
    row = service.map_person(session, principal, platform=body.platform, user_id=body.user_id, person=body.person)
    return PersonOut(platform=row.platform, user_id=row.user_id, person_id=row.person_id)


class EventOut(BaseModel):
    platform: str
    event_id: str
    group_id: str
    action: str
    ticket_id: int | None
    received_at: datetime

    @classmethod
    def of(cls, row: ChatEventRow) -> EventOut:
        return cls(
            platform=row.platform,
            event_id=row.event_id,
            group_id=row.group_id,
            action=row.action,
            ticket_id=row.ticket_id,
            received_at=row.received_at,
        )


@admin.get("/events", response_model=list[EventOut], summary="The last chat events acted on (admins)")
def list_events(session: DB, principal: CurrentPrincipal, limit: Annotated[Limit, Query()] = 50) -> list[EventOut]:
    return [EventOut.of(row) for row in service.recent_events(session, principal, limit=limit)]


class ChatMessageOut(BaseModel):
    platform: str
    group_id: str
    message_id: str | None
    direction: str
    comment_id: int | None
    state: str
    created_at: datetime

    @classmethod
    def of(cls, row: ChatMessageRow) -> ChatMessageOut:
        return cls(
            platform=row.platform,
            group_id=row.group_id,
            message_id=row.message_id,
            direction=row.direction,
            comment_id=row.comment_id,
            state=row.state,
            created_at=row.created_at,
        )


@reads.get(
    "/tickets/{ticket_id}/messages",
    response_model=list[ChatMessageOut],
    summary="A ticket's chat messages: heard in its thread, and replies mirrored there",
)
def ticket_messages(
    ticket_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: DB, principal: CurrentPrincipal
) -> list[ChatMessageOut]:
    return [ChatMessageOut.of(row) for row in service.messages_of_ticket(session, principal, ticket_id)]


router = APIRouter()
router.include_router(events)
router.include_router(admin)
router.include_router(reads)
