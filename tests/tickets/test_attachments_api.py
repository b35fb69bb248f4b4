"""Attachments over the API and the ticket page: upload, download as a file only, limits, tenancy, the sweep.

Runs on SQLite and PostgreSQL (the `client` and `desk` fixtures); the multipart bodies are httpx's own.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tests.tenancy import World, bearer, build_world, web_login
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.tickets import attachments
from zhiban.tickets.blobs import file_store
from zhiban.tickets.store import AttachmentRow, CommentRow

# A real 1x1 PNG: the bytes say image/png whatever the sender declares.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'


@pytest.fixture
def world(desk: Desk) -> World:
    return build_world(desk)


def file_ticket(client: TestClient, world: World, token: str | None = None) -> int:
    answer = client.post(
        "/api/v1/tickets",
        json={"subject": "Audio drops in room 42", "body": "see the logs"},
        headers=bearer(token or world.alice_token),
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def upload(client: TestClient, token: str, ticket: int, *files: tuple[str, bytes, str], **data: Any) -> Any:
    parts = [("file", f) for f in files]
    return client.post(f"/api/v1/tickets/{ticket}/attachments", files=parts, data=data, headers=bearer(token))


def blobs(desk: Desk) -> list[Path]:
    root = Path(desk.settings.var_dir) / "attachments"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rows(desk: Desk) -> int:
    with desk.transaction() as s:
        return s.scalar(select(func.count()).select_from(AttachmentRow)) or 0


def comments(desk: Desk, ticket: int) -> int:
    with desk.transaction() as s:
        return s.scalar(select(func.count()).select_from(CommentRow).where(CommentRow.ticket_id == ticket)) or 0


def test_upload_and_download_round_trip(client: TestClient, desk: Desk, world: World) -> None:
    ticket = file_ticket(client, world)
    log = "2026-11-20 19:00:01 ICE failed 断线\n".encode() * 200
    answer = upload(
        client,
        world.alice_token,
        ticket,
        ("screen.png", PNG, "text/plain"),  # declared wrong: the bytes are a PNG
        ("agora sdk 日志.log", log, "text/plain"),
        body="Screenshot and SDK log attached",
    )
    assert answer.status_code == 201, answer.text
    out = answer.json()
    assert out["url"] == f"/api/v1/tickets/{ticket}/attachments/{out['id']}"
    assert answer.headers["location"] == out["url"]
    assert (out["filename"], out["size"], out["content_type"]) == ("screen.png", len(PNG), "image/png")
    assert [a["filename"] for a in out["attachments"]] == ["screen.png", "agora sdk 日志.log"]
    assert out["attachments"][1]["content_type"] == "text/plain"
    assert len(out["id"]) >= 22 and not out["id"].isdigit()  # random, not a counter

    # The agent downloads both, byte for byte, as files.
    png = client.get(out["url"], headers=bearer(world.agent_token))
    assert png.status_code == 200 and png.content == PNG
    assert png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"] == "attachment; filename=\"screen.png\"; filename*=UTF-8''screen.png"
    assert png.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in png.headers["content-security-policy"]
    text = client.get(out["attachments"][1]["url"], headers=bearer(world.agent_token))
    assert text.content == log and text.headers["content-type"] == "text/plain; charset=utf-8"
    disposition = text.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="agora sdk _.log"')  # an ASCII fallback
    assert "filename*=UTF-8''agora%20sdk%20%E6%97%A5%E5%BF%97.log" in disposition

    # The ticket lists them with the message they came with.
    detail = client.get(f"/api/v1/tickets/{ticket}", headers=bearer(world.alice_token)).json()
    first, message = detail["comments"]
    assert first["attachments"] == [] and message["body"] == "Screenshot and SDK log attached"
    listed = [(a["id"], a["filename"], a["size"], a["content_type"], a["url"]) for a in message["attachments"]]
    assert listed == [(a["id"], a["filename"], a["size"], a["content_type"], a["url"]) for a in out["attachments"]]
    # Kept on disk by content under the desk's var directory, nothing half-written left behind.
    assert sorted(p.name for p in blobs(desk)) == sorted(r.blob_key for r in _rows(desk))


def _rows(desk: Desk) -> list[AttachmentRow]:
    with desk.transaction() as s:
        found = list(s.scalars(select(AttachmentRow)))
        s.expunge_all()
        return found


def test_a_message_of_files_only_is_named_by_them_and_same_bytes_are_kept_once(
    client: TestClient, desk: Desk, world: World
) -> None:
    ticket = file_ticket(client, world)
    one = upload(client, world.alice_token, ticket, ("a.png", PNG, "image/png"))
    two = upload(client, world.agent_token, ticket, ("b.png", PNG, "image/png"))
    assert one.status_code == two.status_code == 201
    detail = client.get(f"/api/v1/tickets/{ticket}", headers=bearer(world.agent_token)).json()
    assert [c["body"] for c in detail["comments"][1:]] == ["📎 a.png", "📎 b.png"]
    assert detail["status"] == "open"  # the agent's message is a public reply, as any other
    assert len(blobs(desk)) == 1 and rows(desk) == 2


@pytest.mark.parametrize(
    ("name", "data", "declared", "stored"),
    [
        ("page.html", HTML, "text/html", "text/html"),
        ("cute.png", HTML, "image/png", "text/html"),  # a page that claims to be an image
        ("logo.svg", SVG, "image/svg+xml", "image/svg+xml"),
        ("data.xml", b'<?xml version="1.0"?><a/>', "text/plain", "application/xml"),
    ],
)
def test_markup_is_served_as_an_octet_stream_download(
    client: TestClient, world: World, name: str, data: bytes, declared: str, stored: str
) -> None:
    ticket = file_ticket(client, world)
    out = upload(client, world.alice_token, ticket, (name, data, declared)).json()
    assert out["content_type"] == stored
    for path in (out["url"], f"/tickets/{ticket}/attachments/{out['id']}"):  # the API's and the page's link
        got = client.get(path, headers=bearer(world.agent_token))
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\invoice\u202efdp.exe", "invoice fdp.exe"),  # no right-to-left override
        ("..", "attachment"),
        ("a<b>c|d?.txt", "a_b_c_d_.txt"),
    ],
)
def test_file_names_lose_paths_and_tricks(client: TestClient, world: World, sent: str, kept: str) -> None:
    ticket = file_ticket(client, world)
    out = upload(client, world.alice_token, ticket, (sent, b"x", "text/plain")).json()
    assert out["filename"] == kept


@pytest.fixture
def small_desk(engine: Engine, clock: FrozenClock, tmp_path: Path) -> Desk:
    settings = Settings(
        database_url=str(engine.url),
        var_dir=str(tmp_path / "var"),
        demo=False,
        simulate=False,
        attachment_max_file_bytes=1000,
        attachment_max_ticket_bytes=2500,
        attachment_max_ticket_files=4,
        body_max_uploads=8000,
    )
    return Desk(settings=settings, clock=clock, engine=engine, secret_key="test-secret-key")


@pytest.fixture
def small_client(small_desk: Desk) -> Iterator[TestClient]:
    from zhiban.web.app import create_app

    with TestClient(create_app(small_desk)) as c:
        yield c


def _refused(answer: Any) -> None:
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "https://zhiban.dev/problems/payload-too-large"


def test_limits_per_file_per_ticket_and_per_body_refuse_with_413_and_keep_nothing(
    small_client: TestClient, small_desk: Desk
) -> None:
    client, desk = small_client, small_desk
    world = build_world(desk)
    ticket = file_ticket(client, world)

    _refused(upload(client, world.alice_token, ticket, ("big.log", b"x" * 1001, "text/plain")))
    assert (rows(desk), blobs(desk), comments(desk, ticket)) == (0, [], 1)

    assert upload(client, world.alice_token, ticket, ("a.log", b"a" * 1000, "text/plain")).status_code == 201
    assert upload(client, world.alice_token, ticket, ("b.log", b"b" * 1000, "text/plain")).status_code == 201
    # 2,000 of the ticket's 2,500 bytes are taken: 501 more would pass the ticket's total, even in small files.
    _refused(upload(client, world.alice_token, ticket, ("c.log", b"c" * 300, "text/plain"), ("d", b"d" * 201, "")))
    assert (rows(desk), len(blobs(desk)), comments(desk, ticket)) == (2, 2, 3)
    assert upload(client, world.alice_token, ticket, ("e.log", b"e" * 500, "text/plain")).status_code == 201
    # Four files is the ticket's count.
    assert upload(client, world.alice_token, ticket, ("f.log", b"", "text/plain")).status_code == 201
    _refused(upload(client, world.alice_token, ticket, ("g.log", b"", "text/plain")))
    assert rows(desk) == 4

    # A body past the uploads' bound is refused as it streams in (the per-file check never runs).
    other = file_ticket(client, world)
    _refused(upload(client, world.alice_token, other, ("huge.log", b"h" * 9000, "text/plain")))
    assert comments(desk, other) == 1 and rows(desk) == 4
    # Only upload routes have the larger bound: a JSON reply of the same size is the API's to refuse.
    assert desk.settings.body_max_api > 9000


def test_uploads_need_a_file(client: TestClient, world: World) -> None:
    ticket = file_ticket(client, world)
    answer = client.post(
        f"/api/v1/tickets/{ticket}/attachments", data={"body": "no file"}, headers=bearer(world.alice_token)
    )
    assert answer.status_code == 422 and "`file`" in answer.json()["detail"]


def test_another_organization_never_reaches_a_file(client: TestClient, desk: Desk, world: World) -> None:
    ticket = file_ticket(client, world)
    out = upload(client, world.alice_token, ticket, ("liveco.log", b"LiveCo private log", "text/plain")).json()
    # Bob (ClassMate) neither reads it by its id nor adds a file to LiveCo's ticket.
    for path in (out["url"], f"/tickets/{ticket}/attachments/{out['id']}"):
        got = client.get(path, headers={**bearer(world.bob_token), "Accept": "application/json"})
        assert got.status_code == 404 and b"LiveCo private" not in got.content
    sneaky = upload(client, world.bob_token, ticket, ("x.log", b"from bob", "text/plain"))
    assert sneaky.status_code == 404
    assert rows(desk) == 1 and len(blobs(desk)) == 1
    # A guessed id (random, not sequential) finds nothing either.
    guess = f"/api/v1/tickets/{ticket}/attachments/{'A' * 24}"
    guessed = client.get(guess, headers=bearer(world.bob_token))
    assert guessed.status_code == 404
    # Nor does Bob reach it through a ticket of his own: a file is found only under its own ticket.
    own = file_ticket(client, world, world.bob_token)
    through_own = client.get(f"/api/v1/tickets/{own}/attachments/{out['id']}", headers=bearer(world.bob_token))
    assert through_own.status_code == 404 and b"LiveCo private" not in through_own.content
    # Without credentials: nothing.
    assert client.get(out["url"]).status_code == 401


def test_an_internal_note_s_file_never_reaches_the_customer(client: TestClient, desk: Desk, world: World) -> None:
    ticket = file_ticket(client, world)
    note = upload(
        client, world.agent_token, ticket, ("analysis.txt", b"root cause: our SFU", "text/plain"), public="false"
    )
    assert note.status_code == 201
    got = client.get(note.json()["url"], headers=bearer(world.alice_token))
    assert got.status_code == 404 and b"SFU" not in got.content
    seen = client.get(f"/api/v1/tickets/{ticket}", headers=bearer(world.alice_token)).json()
    assert all(c["attachments"] == [] for c in seen["comments"]) and "analysis" not in str(seen)
    assert client.get(note.json()["url"], headers=bearer(world.agent_token)).content == b"root cause: our SFU"
    # A customer cannot post a file as an internal note (and nothing is kept).
    refused = upload(client, world.alice_token, ticket, ("x.txt", b"x", "text/plain"), public="false")
    assert refused.status_code == 403 and rows(desk) == 1


def test_the_ticket_page_uploads_and_links_files(desk: Desk, client: TestClient) -> None:
    world = build_world(desk, passwords=True)
    ticket = file_ticket(client, world)
    assert web_login(client, "alice@liveco.test").status_code == 303
    page = client.get(f"/tickets/{ticket}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf and 'enctype="multipart/form-data"' in page.text and 'type="file"' in page.text
    # A file posted from another site's form (no CSRF token of the session) is refused and nothing is kept.
    forged = client.post(
        f"/tickets/{ticket}/reply",
        data={"body": "forged"},
        files=[("file", ("evil.txt", b"evil", "text/plain"))],
        follow_redirects=False,
    )
    assert forged.status_code == 403 and rows(desk) == 0 and blobs(desk) == []
    sent = client.post(
        f"/tickets/{ticket}/reply",
        data={"body": "here is the dump", "csrf_token": csrf.group(1)},
        files=[("file", ("webrtc_internals_dump.txt", b'{"PeerConnections": {}}', "application/json"))],
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    page = client.get(f"/tickets/{ticket}")
    found = rf'href="(/tickets/{ticket}/attachments/[A-Za-z0-9_-]+)"[^>]*>webrtc_internals_dump.txt<'
    link = re.search(found, page.text)
    assert link, page.text
    got = client.get(link.group(1))
    assert got.status_code == 200 and got.content == b'{"PeerConnections": {}}'
    assert got.headers["content-type"] == "application/json"  # text whose declared type agrees is kept as declared
    # A reply without a file is still a plain reply: a browser sends the empty file input as a part with
    # filename="" (httpx would leave the part's filename out, so the body is written here as Chromium writes it).
    boundary = "----WebKitFormBoundaryzhiban"
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf.group(1)}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="body"\r\n\r\nand one more thing\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename=""\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n\r\n--{boundary}--\r\n"
    )
    plain = client.post(
        f"/tickets/{ticket}/reply",
        content=raw.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        follow_redirects=False,
    )
    assert plain.status_code == 303 and rows(desk) == 1


def test_the_sweep_deletes_only_old_blobs_no_attachment_names(client: TestClient, desk: Desk, world: World) -> None:
    ticket = file_ticket(client, world)
    assert upload(client, world.alice_token, ticket, ("kept.log", b"kept", "text/plain")).status_code == 201
    store = file_store(desk.settings.var_dir)
    orphan = store.put(io.BytesIO(b"an upload whose transaction rolled back"), max_bytes=1000)
    fresh = store.put(io.BytesIO(b"an upload still committing"), max_bytes=1000)
    partial = Path(desk.settings.var_dir) / "attachments" / ".part-crashed"
    partial.write_bytes(b"half")
    old = time.time() - 7 * 3600
    for path in [*blobs(desk), partial]:
        if fresh.key not in path.name:
            os.utime(path, (old, old))
    with desk.transaction() as s:
        before = datetime.now(UTC) - attachments.SWEEP_GRACE
        assert attachments.sweep_orphans(s, store, before=before) == 1
    names = {p.name for p in blobs(desk)}
    assert orphan.key not in names and fresh.key in names and not partial.exists()
    kept = client.get(f"/api/v1/tickets/{ticket}", headers=bearer(world.agent_token)).json()["comments"][1]
    assert client.get(kept["attachments"][0]["url"], headers=bearer(world.agent_token)).content == b"kept"


def test_uploading_arms_the_daily_sweep(client: TestClient, desk: Desk, world: World) -> None:
    from zhiban.engine import list_jobs

    ticket = file_ticket(client, world)
    upload(client, world.alice_token, ticket, ("a.log", b"a", "text/plain"))
    with desk.transaction() as s:
        kinds = [j.kind for j in list_jobs(s)]
    assert kinds.count(attachments.SWEEP_JOB) == 1
    assert timedelta(hours=1) < attachments.SWEEP_GRACE


def test_a_new_ticket_in_the_portal_carries_its_files_or_is_not_filed(
    small_client: TestClient, small_desk: Desk
) -> None:
    client, desk = small_client, small_desk
    build_world(desk, passwords=True)
    assert web_login(client, "alice@liveco.test").status_code == 303
    form = client.get("/portal/new")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf and 'enctype="multipart/form-data"' in form.text
    fields = {"subject": "Echo in room 7", "body": "dump attached", "csrf_token": csrf.group(1)}
    filed = client.post(
        "/portal/new",
        data=fields,
        files=[("file", ("webrtc_internals_dump.txt", b'{"PeerConnections": {}}', "text/plain"))],
        follow_redirects=False,
    )
    assert filed.status_code == 303, filed.text
    ticket = int(filed.headers["location"].rpartition("/")[2])
    with desk.transaction() as s:
        [first] = s.scalars(select(CommentRow).where(CommentRow.ticket_id == ticket))
        files = attachments.of_comments(s, [first.id])[first.id]
        assert first.body == "dump attached" and [f.filename for f in files] == ["webrtc_internals_dump.txt"]
    # A file over the per-file bound: 413, and no ticket is filed at all.
    refused = client.post(
        "/portal/new",
        data={**fields, "subject": "Too big"},
        files=[("file", ("huge.log", b"x" * 1001, "text/plain"))],
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    assert refused.status_code == 413
    with desk.transaction() as s:
        assert s.scalar(select(func.count()).select_from(CommentRow)) == 1
    assert rows(desk) == 1 and len(blobs(desk)) == 1


def test_two_uploads_at_once_cannot_both_take_the_ticket_s_last_room(
    client: TestClient, desk: Desk, world: World
) -> None:
    """The first upload holds the ticket's row until it commits: the second counts its bytes, and is refused."""
    import threading

    from zhiban.core.errors import TooLarge
    from zhiban.identity import service as identity

    ticket = file_ticket(client, world)
    limits = attachments.Limits(file_bytes=1000, ticket_bytes=1500, ticket_files=10)
    store = attachments.store_of(desk.settings)
    with desk.transaction() as s:
        person = identity.person(s, world.alice_id)
        assert person is not None
        alice = identity.principal_of(person)
    first_uploaded, second_started = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def second() -> None:
        first_uploaded.wait(10)
        second_started.set()
        try:
            with desk.transaction() as s:
                files = [attachments.Upload.of_bytes("b.log", "text/plain", b"b" * 1000)]
                attachments.upload(s, desk.clock, alice, ticket, files, store=store, limits=limits)
            outcome["second"] = "kept"
        except TooLarge:
            outcome["second"] = "refused"

    worker = threading.Thread(target=second)
    worker.start()
    with desk.transaction() as s:
        files = [attachments.Upload.of_bytes("a.log", "text/plain", b"a" * 1000)]
        attachments.upload(s, desk.clock, alice, ticket, files, store=store, limits=limits)
        first_uploaded.set()
        second_started.wait(10)
        time.sleep(0.5)  # the second upload is now waiting for the ticket's row (or, on SQLite, the write lock)
    worker.join(30)
    assert outcome == {"second": "refused"} and rows(desk) == 1
