"""Request bodies are capped as they stream in: 413 before buffering, for every route family."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from zhiban.core.settings import Settings
from zhiban.web.limits import OWN_CAP, BodyLimit, caps, family_of

ROOT = Path(__file__).resolve().parents[2]
CAP = 1000


async def _read_all(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that buffers the whole body, as a JSON endpoint does, then answers 200 with its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _call(chunks: list[bytes], headers: list[tuple[bytes, bytes]], path: str = "/api/v1/tickets") -> dict[str, Any]:
    """Run BodyLimit (cap CAP for the API) over `_read_all`; what was sent back and how many chunks were read."""
    pending = list(chunks)
    read = 0

    async def receive() -> Message:
        nonlocal read
        read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    limited = BodyLimit(_read_all, caps={**caps(Settings()), "api": CAP})
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    # A loop of its own, in a thread of its own: a Playwright loop may already run in this xdist worker's thread.
    runner = threading.Thread(target=asyncio.run, args=(limited(scope, receive, send),))
    runner.start()
    runner.join()
    start = sent[0]
    return {
        "status": start["status"],
        "headers": dict(start["headers"]),
        "body": b"".join(m.get("body", b"") for m in sent[1:]),
        "read": read,
    }


def test_a_declared_length_over_the_cap_is_refused_unread() -> None:
    out = _call([b"x" * 600, b"x" * 600], [(b"content-length", b"1200")])
    assert out["status"] == 413
    assert out["read"] == 0
    assert out["headers"][b"content-type"] == b"application/problem+json"
    assert out["headers"][b"connection"] == b"close"
    assert b'"type":"https://zhiban.dev/problems/payload-too-large"' in out["body"]


def test_a_chunked_body_stops_being_read_at_the_cap() -> None:
    out = _call([b"x" * 400] * 100, [(b"transfer-encoding", b"chunked")])
    assert out["status"] == 413
    assert out["read"] == 3  # 1,200 bytes passed the cap of 1,000: the other 97 chunks are never pulled
    assert b"larger than 1000 bytes" in out["body"]


def test_a_lying_content_length_is_still_stopped_at_the_cap() -> None:
    out = _call([b"x" * 400] * 10, [(b"content-length", b"10")])
    assert (out["status"], out["read"]) == (413, 3)


def test_bodies_within_the_cap_pass_whole() -> None:
    out = _call([b"x" * 500, b"x" * 500], [(b"transfer-encoding", b"chunked")])
    assert (out["status"], out["body"], out["read"]) == (200, b"1000", 2)


def test_families_that_cap_themselves_pass_through() -> None:
    out = _call([b"x" * 4000], [(b"content-length", b"4000")], path="/api/v1/telemetry")
    assert (out["status"], out["body"]) == (200, b"4000")


def test_every_path_has_one_family_and_a_cap() -> None:
    table = caps(Settings(body_max_api=2048, body_max_pages=4096, body_max_integrations=8192, body_max_uploads=16384))
    assert family_of("/api/v1/tickets").name == "api"
    assert family_of("/api/v1/integrations/alertmanager/k").name == "integrations"
    assert family_of("/api/v1/heartbeats/k").name == "integrations"
    assert family_of("/api/v1/telemetry").name == "telemetry"
    assert family_of("/api/v1/telemetry/x").name == "api"
    assert family_of("/v2/enqueue").name == "events"
    assert family_of("/login").name == "pages"
    # Only the routes that take files get the uploads' larger bound: not the rest of a ticket's routes.
    assert family_of("/api/v1/tickets/12/attachments").name == "uploads"
    assert family_of("/tickets/12/reply").name == "uploads"
    assert family_of("/portal/new").name == "uploads"
    assert family_of("/api/v1/tickets/12/comments").name == "api"
    assert family_of("/api/v1/tickets/12/attachments/x").name == "api"
    assert family_of("/tickets/12/status").name == "pages"
    assert table == {
        "events": OWN_CAP,
        "telemetry": OWN_CAP,
        "integrations": 8192,
        "uploads": 16384,
        "api": 2048,
        "pages": 4096,
    }


def test_the_app_answers_problem_json_413_for_a_streamed_json_body(client: TestClient) -> None:
    def body() -> Any:
        yield b'{"subject": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    answer = client.post("/api/v1/tickets", content=body(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "https://zhiban.dev/problems/payload-too-large"
    assert answer.headers["connection"] == "close"


@pytest.mark.slow
def test_a_200_mb_and_a_1250_mb_body_leave_a_real_server_flat() -> None:
    """The probe's attack on /api/v1/tickets (unauthenticated and with a customer token) against `zhiban web`."""
    spec = importlib.util.spec_from_file_location("attack_bodies", ROOT / "tools" / "attack_bodies.py")
    assert spec is not None and spec.loader is not None
    attack = importlib.util.module_from_spec(spec)
    sys.modules["attack_bodies"] = attack
    spec.loader.exec_module(attack)
    assert attack.run(mb=200, big_mb=1250, budget_mb=50.0, only="tickets")
