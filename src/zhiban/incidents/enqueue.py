"""PagerDuty Events API v2 at `POST /v2/enqueue`, answered before the web framework's routing.

An alert storm is the one moment the desk must not slow down, and FastAPI's routing, dependency
injection and Request/Response objects cost more CPU per event than reading, checking and queueing
the event itself. So `EnqueueEndpoint` (plain ASGI, outermost in the app) answers this one path
directly; every other request passes through untouched. It keeps what the rest of the app gives a
request: the X-Request-Id header, the Prometheus request metrics and a bounded body.

The answers are PagerDuty's own shape, not problem JSON: monitoring tools that speak Events API v2
(Grafana, Datadog, Zabbix, pdagent…) read `status`/`message`/`errors` and the 202/400/429 codes
exactly as PagerDuty sends them, so zhiban can stand in for PagerDuty by changing one URL.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Final

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from zhiban.incidents.intake import EventsIntake, IntakeFull, intake_for
from zhiban.incidents.model import EventRejected, parse_events_v2
from zhiban.web.observability import observe, request_id_of

PATH: Final = "/v2/enqueue"
MAX_EVENT_BYTES: Final = 512 * 1024
_INVALID: Final = {"status": "invalid event", "message": "Event object is invalid"}
_TOO_LARGE: Final = {**_INVALID, "errors": [f"the body is larger than {MAX_EVENT_BYTES} bytes"]}
_JSON_HEADERS: Final = (b"content-type", b"application/json")


class TokenBucket:
    """Per routing key: `rate` events a second with bursts of `burst` (bounded number of keys)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._desk_rate, self._desk_burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def share(self, processes: int) -> None:
        """Keep this process's share of the desk's rate: the buckets are in memory, and the kernel spreads a
        sender's connections over the web processes, so N processes each allowing rate/N hold the desk's rate."""
        n = max(1, processes)
        with self._lock:
            self.rate, self.burst = self._desk_rate / n, max(1.0, self._desk_burst / n)

    def take(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return False
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()
            self._buckets[key] = (tokens - 1, now)
            return True


# PagerDuty throttles per routing key; ours is generous enough for a real alert storm.
EVENTS_THROTTLE = TokenBucket(rate=2_000, burst=4_000)


async def accept_event(intake: EventsIntake, body: bytes) -> tuple[int, dict[str, Any]]:
    """Check, throttle and store one Events v2 body; (HTTP status, PagerDuty-shaped answer).

    202 means committed: the intake answers once the batch holding the event is in the database.
    """
    if len(body) > MAX_EVENT_BYTES:
        return 400, _TOO_LARGE
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return 400, {**_INVALID, "errors": [f"the body is not JSON: {exc}"]}
    key = doc.get("routing_key") if isinstance(doc, dict) else None
    if isinstance(key, str) and not EVENTS_THROTTLE.take(key[:64]):
        return 429, {"status": "throttle event", "message": "Requests for this routing key are throttled"}
    try:
        routing_key, event = parse_events_v2(doc, uuid.uuid4().hex)
        await intake.submit(routing_key, event)
    except EventRejected as exc:
        return 400, {**_INVALID, "errors": exc.errors}
    except IntakeFull:
        return 429, {"status": "throttle event", "message": "Too many events are waiting; retry shortly"}
    return 202, {"status": "success", "message": "Event processed", "dedup_key": event.dedup_key}


def intake_of(app: Any) -> EventsIntake:
    """The web app's one intake (its writer thread batches the commits of every request)."""
    desk = app.state.desk
    return intake_for(app.state, lambda: EventsIntake(desk.sessions, desk.clock))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it outgrows `limit` (the rest is never buffered)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class EnqueueEndpoint:
    """ASGI middleware that answers POST /v2/enqueue itself and passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id_of(scope)
        body = await _read_body(receive, MAX_EVENT_BYTES)
        if body is None:
            status, answer = 400, _TOO_LARGE
        else:
            status, answer = await accept_event(intake_of(scope["app"]), body)
        payload = orjson.dumps(answer)
        headers = [
            _JSON_HEADERS,
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", rid.encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        observe("POST", PATH, status, start)
