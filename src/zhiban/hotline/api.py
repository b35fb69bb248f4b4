"""The hotline's HTTP edges: Twilio's voice webhooks (public, but each signed) and the admins' support lines.

A webhook's body is read up to 16 KiB, its signature checked against the URL Twilio called, which is the
desk's public base URL (ZHIBAN_BASE_URL) and the path: behind a proxy the host the app sees is not the one
Twilio signed. A bad or missing signature is 403 before anything is read from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from zhiban.core.errors import Forbidden, InvalidInput, TooLarge
from zhiban.hotline import model, service
from zhiban.hotline.model import CallEvent, Line, Urls
from zhiban.hotline.provider import VoiceWebhooks
from zhiban.hotline.twilio_voice import TwilioVoice, auth_token_of
from zhiban.notify.channels.phone import PAGE_ACK_PATH, PAGE_STATUS_PATH
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of
from zhiban.web.scopes import PUBLIC, needs

router = APIRouter(tags=["hotline"])

VOICE = "/api/v1/hotline/twilio/voice"
TWIML = "application/xml"


class NotConfigured(Forbidden):
    """Without the account's auth token no webhook can be shown to be Twilio's: each is refused as unsigned."""

    type_ = "hotline-not-configured"


@dataclass(frozen=True)
class Webhook:
    provider: VoiceWebhooks
    event: CallEvent
    urls: Urls


async def _form(request: Request) -> dict[str, list[str]]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > model.MAX_BODY:
            raise TooLarge(f"a voice webhook is at most {model.MAX_BODY} bytes")
    try:
        params = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=model.MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("a voice webhook is a form of at most 100 UTF-8 fields") from exc
    if any(len(v) > model.MAX_VALUE for values in params.values() for v in values):
        raise InvalidInput(f"a webhook field is at most {model.MAX_VALUE} characters")
    return params


async def _webhook(request: Request) -> Webhook:
    """The signed webhook: its provider, its call event, and where the call's next webhooks go."""
    params = await _form(request)
    settings = desk_of(request).settings
    token = auth_token_of(settings.twilio_url)
    if not token:
        raise NotConfigured("no Twilio account is configured (ZHIBAN_TWILIO_URL): the hotline cannot check calls")
    provider = TwilioVoice(token)
    base = settings.base_url.rstrip("/")
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not provider.verify(url, params, request.headers):
        raise service.BadSignature("the request is not signed by the hotline's Twilio account")
    urls = Urls(
        menu=f"{base}{VOICE}/menu",
        identify=f"{base}{VOICE}/identify",
        recorded=f"{base}{VOICE}/recorded",
        recording=f"{base}{VOICE}/recording",
        wait=f"{base}{VOICE}/wait",
    )
    return Webhook(provider, provider.event(params), urls)


Signed = Annotated[Webhook, Depends(_webhook)]


def _twiml(text: str) -> Response:
    return Response(content=text, media_type=TWIML)


@router.post(VOICE, summary="Twilio: a call rings a support line", dependencies=[PUBLIC], response_class=Response)
def incoming(hook: Signed, session: DB, clock: ClockDep) -> Response:
    return _twiml(service.incoming(session, clock, hook.provider, hook.event, hook.urls))


@router.post(
    f"{VOICE}/identify", summary="Twilio: an unknown caller's ticket number", dependencies=[PUBLIC],
    response_class=Response,
)  # fmt: skip
def identify(hook: Signed, session: DB, clock: ClockDep) -> Response:
    return _twiml(service.identify(session, clock, hook.provider, hook.event, hook.urls))


@router.post(f"{VOICE}/menu", summary="Twilio: the caller's choice", dependencies=[PUBLIC], response_class=Response)
def menu(hook: Signed, session: DB, clock: ClockDep) -> Response:
    return _twiml(service.menu(session, clock, hook.provider, hook.event, hook.urls))


@router.post(
    f"{VOICE}/wait", summary="Twilio: the caller holds while the engineer is paged", dependencies=[PUBLIC],
    response_class=Response,
)  # fmt: skip
def wait(
    hook: Signed, session: DB, clock: ClockDep, round_: Annotated[int, Query(alias="round", ge=0, le=50)] = 0
) -> Response:
    return _twiml(service.wait(session, clock, hook.provider, hook.event, hook.urls, round_))


@router.post(f"{VOICE}/recorded", summary="Twilio: a voicemail ended", dependencies=[PUBLIC], response_class=Response)
def recorded(hook: Signed, session: DB, clock: ClockDep) -> Response:
    return _twiml(service.recorded(session, clock, hook.provider, hook.event))


@router.post(
    f"{VOICE}/recording", status_code=204, summary="Twilio: a voicemail's recording is ready",
    dependencies=[PUBLIC], response_class=Response,
)  # fmt: skip
def recording(hook: Signed, session: DB, clock: ClockDep) -> Response:
    service.recording(session, clock, hook.provider, hook.event)
    return Response(status_code=204)


@router.post(
    PAGE_ACK_PATH, summary="Twilio: a key pressed on a page call (1 acknowledges)", dependencies=[PUBLIC],
    response_class=Response,
)  # fmt: skip
def page_ack(hook: Signed, session: DB, clock: ClockDep) -> Response:
    return _twiml(service.page_keypress(session, clock, hook.provider, hook.event))


@router.post(
    PAGE_STATUS_PATH, status_code=204, summary="Twilio: a page call's status", dependencies=[PUBLIC],
    response_class=Response,
)  # fmt: skip
def page_status(hook: Signed, session: DB, clock: ClockDep) -> Response:
    service.page_status(session, clock, hook.event)
    return Response(status_code=204)


# --- support lines (admins) -------------------------------------------------------------------------

Number = Annotated[str, Path(min_length=2, max_length=32, description="E.164, e.g. +15550100001")]


class LineIn(BaseModel):
    plan: str = Field(min_length=1, max_length=64, description="the plan whose customers call this number")
    language: model.Language = "zh"
    label: str = Field("", max_length=100, description="the name the greeting says (default: the plan)")


class LineOut(BaseModel):
    number: str
    plan: str
    language: str
    label: str

    @classmethod
    def of(cls, line: Line) -> LineOut:
        return cls(number=line.number, plan=line.plan, language=line.language, label=line.label)


@router.get(
    "/api/v1/hotline/lines", response_model=list[LineOut], summary="Support lines", dependencies=[needs("admin")]
)
def lines(session: DB, principal: CurrentPrincipal) -> list[LineOut]:
    principal.require_admin()
    return [LineOut.of(line) for line in service.list_lines(session, principal)]


@router.put(
    "/api/v1/hotline/lines/{number}",
    response_model=LineOut,
    summary="Add or change the support line on a number (admins)",
    dependencies=[needs("admin")],
)
def set_line(number: Number, body: LineIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> LineOut:
    line = service.set_line(session, clock, principal, number, plan=body.plan, language=body.language, label=body.label)
    return LineOut.of(line)


@router.delete(
    "/api/v1/hotline/lines/{number}",
    status_code=204,
    summary="Remove a support line (admins)",
    dependencies=[needs("admin")],
    response_class=Response,
)
def remove_line(number: Number, session: DB, principal: CurrentPrincipal) -> Response:
    service.remove_line(session, principal, number)
    return Response(status_code=204)
