"""One streaming cap on every request body, by route family: 413 before buffering, never past the cap.

The table below is the one place that says how large a body each family of routes may send. Two
families stream their own cap and are passed through here: the Events API v2 endpoint (answered
before routing, in PagerDuty's own shape, enqueue.MAX_EVENT_BYTES) and telemetry ingest
(ZHIBAN_TELEMETRY_MAX_BODY_BYTES, whose gzip bodies also have inflation limits in telemetry/parse.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhiban.core.errors import PROBLEM_BASE
from zhiban.core.settings import Settings

OWN_CAP: Final = -1  # the family's route streams its own cap


@dataclass(frozen=True)
class Family:
    """Routes whose path is `path` (exact), starts with one of `prefixes` or matches `pattern` (whole), and the
    setting capping them."""

    name: str
    setting: str
    path: str = ""
    prefixes: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def holds(self, path: str) -> bool:
        if self.pattern is not None and self.pattern.fullmatch(path):
            return True
        return path == self.path or (bool(self.prefixes) and path.startswith(self.prefixes))


# First match wins; the last family holds every other path (the UI's pages and forms).
FAMILIES: Final = (
    Family("events", "", path="/v2/enqueue"),
    Family("telemetry", "", path="/api/v1/telemetry"),
    Family("integrations", "body_max_integrations", prefixes=("/api/v1/integrations/", "/api/v1/heartbeats/")),
    # Attachment uploads (the API's, the ticket page's reply and the portal's new ticket forms): larger than JSON.
    Family(
        "uploads",
        "body_max_uploads",
        pattern=re.compile(r"/api/v1/tickets/[0-9]{1,10}/attachments|/tickets/[0-9]{1,10}/reply|/portal/new"),
    ),
    Family("api", "body_max_api", prefixes=("/api/",)),
    Family("pages", "body_max_pages", prefixes=("/",)),
)


def family_of(path: str) -> Family:
    """The family a request path belongs to."""
    return next((f for f in FAMILIES if f.holds(path)), FAMILIES[-1])


def caps(settings: Settings) -> dict[str, int]:
    """Each family's largest body in bytes (OWN_CAP for a family that caps itself)."""
    return {f.name: int(getattr(settings, f.setting)) if f.setting else OWN_CAP for f in FAMILIES}


class BodyTooLarge(HTTPException):
    """A body passed its family's cap while the app read it (the problem handlers answer 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _too_large_response(limit: int, path: str) -> tuple[Message, Message]:
    body = orjson.dumps(
        {
            "type": PROBLEM_BASE + "payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"the request body is larger than {limit} bytes",
            "instance": path,
        }
    )
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body is never read, so this connection cannot carry another request.
        (b"connection", b"close"),
    ]
    return (
        {"type": "http.response.start", "status": 413, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


class BodyLimit:
    """ASGI middleware: a declared length over the cap gets 413 unread; a longer stream stops at the cap."""

    def __init__(self, app: ASGIApp, caps: dict[str, int]) -> None:
        self.app = app
        self.caps = caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.caps[family_of(scope["path"]).name]
        if limit == OWN_CAP:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            for message in _too_large_response(limit, scope["path"]):
                await send(message)
            return
        received = 0
        overflowed = False
        started = False

        async def capped_receive() -> Message:
            nonlocal received, overflowed
            if overflowed:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflowed = True
                    raise BodyTooLarge(limit)
            return message

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if overflowed:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, capped_receive, send_closing)
        except BodyTooLarge:
            # Raised where no handler answered it (outside routing); answer here if nothing was sent yet.
            if started:
                raise
            for message in _too_large_response(limit, scope["path"]):
                await send(message)


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes; never buffered past it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
