"""Who may write into a ticket by mail: sender authentication, secret reply tokens, held mail, MIME bounds.

smtplib → the real inbound listener (aiosmtpd) → the desk; runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from fastapi.testclient import TestClient

from tests.mail.mail_kit import AUTHSERV, DESK_ADDRESS, Outbox, customer_mail, smtp_send, unused_port
from tests.tenancy import World, bearer, build_world, web_login
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.identity.model import Principal, Role
from zhiban.mail.inbound import InboundListener, start_inbound
from zhiban.mail.reply_token import reply_token
from zhiban.tickets import service as tickets
from zhiban.tickets.service import TicketView

ALICE = "alice@liveco.test"
BOB = "bob@classmate.test"
STAFF = Principal(person_id="test", role=Role.AGENT, organization_id=None)


def all_tickets(desk: Desk) -> list[TicketView]:
    with desk.transaction() as s:
        return [tickets.get_ticket(s, STAFF, row.id) for row in tickets.list_tickets(s, STAFF, limit=200)]


def bodies(desk: Desk) -> dict[int, list[str]]:
    return {v.ticket.id: [c.body for c in v.comments] for v in all_tickets(desk)}


def send(inbound: InboundListener, raw: bytes, sender: str, to: str = DESK_ADDRESS) -> str:
    answer = smtp_send(inbound.port, raw, mail_from=sender, to=to)
    assert answer.code == 250, answer
    return answer.text


def bobs_ticket(desk: Desk, inbound: InboundListener, outbox: Outbox, worker: Worker) -> tuple[int, str, str]:
    """Bob files a ticket with authenticated mail; (ticket id, the confirmation's Reply-To, its Message-ID)."""
    send(inbound, customer_mail(BOB, "Class recording lost", "Lost at 09:00.", message_id="<b0@classmate.test>"), BOB)
    [view] = all_tickets(desk)
    assert worker.run_once() == 1
    confirmation = outbox.received[-1]
    return view.ticket.id, confirmation["Reply-To"], confirmation["Message-ID"]


def test_forged_from_of_a_customer_is_held_not_filed(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker, client: TestClient
) -> None:
    tid, _, _ = bobs_ticket(desk, inbound, outbox, worker)
    before = bodies(desk)
    # Plain SMTP, no authentication: a new "ticket", and a "reply" by subject tag.
    forged_new = customer_mail(BOB, "Please delete our data", "x", message_id="<f1@evil.test>", authenticated=False)
    forged_reply = customer_mail(
        BOB, f"Re: [#{tid}] Class recording lost", "Injected", message_id="<f2@evil.test>", authenticated=False
    )
    assert "held" in send(inbound, forged_new, "attacker@evil.test")
    assert "held" in send(inbound, forged_reply, "attacker@evil.test")
    assert bodies(desk) == before

    agent = bearer(world.agent_token)
    listed = client.get("/api/v1/mail/held", headers=agent)
    assert listed.status_code == 200
    rows = listed.json()
    assert [(r["sender"], r["subject"], r["organization_id"], r["state"]) for r in rows] == [
        (BOB, "Re: Class recording lost", world.classmate, "held"),
        (BOB, "Please delete our data", world.classmate, "held"),
    ]
    assert all("no aligned" in r["reason"] for r in rows)
    # Customers never see the queue (Bob cannot learn what was sent in his name, nor release it).
    assert client.get("/api/v1/mail/held", headers=bearer(world.bob_token)).status_code == 403
    assert client.post(f"/api/v1/mail/held/{rows[0]['id']}/release", headers=bearer(world.bob_token)).status_code == 403
    # The sender retries: still one held copy.
    send(inbound, forged_new, "attacker@evil.test")
    assert len(client.get("/api/v1/mail/held", headers=agent).json()) == 2


def test_agent_releases_or_discards_held_mail(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker, client: TestClient
) -> None:
    tid, _, _ = bobs_ticket(desk, inbound, outbox, worker)
    reply = customer_mail(
        BOB, f"Re: [#{tid}] x", "Found it on the other server.", message_id="<r1@cm>", authenticated=False
    )
    junk = customer_mail(BOB, "Win a prize", "spam", message_id="<j1@cm>", authenticated=False)
    send(inbound, reply, BOB)
    send(inbound, junk, BOB)
    agent = bearer(world.agent_token)
    junk_id, reply_id = (r["id"] for r in client.get("/api/v1/mail/held", headers=agent).json())

    discarded = client.post(f"/api/v1/mail/held/{junk_id}/discard", headers=agent)
    assert discarded.status_code == 200
    assert (discarded.json()["state"], discarded.json()["decided_by"]) == ("discarded", world.agent_id)
    released = client.post(f"/api/v1/mail/held/{reply_id}/release", headers=agent)
    assert released.status_code == 200, released.text
    body = released.json()
    # Released mail is filed as its sender; the subject tag alone still does not thread it.
    assert body["action"] == "created" and body["ticket_id"] != tid
    new = next(v for v in all_tickets(desk) if v.ticket.id == body["ticket_id"])
    assert (new.ticket.requester_id, new.ticket.organization_id) == (world.bob_id, world.classmate)
    assert [c.body for c in new.comments] == ["Found it on the other server."]
    assert body["held"]["state"] == "released" and body["held"]["ticket_id"] == new.ticket.id
    again = client.post(f"/api/v1/mail/held/{reply_id}/release", headers=agent)
    assert again.status_code == 409 and again.json()["type"].endswith("/conflict")
    assert client.post("/api/v1/mail/held/999999/discard", headers=agent).status_code == 404
    assert len(all_tickets(desk)) == 2
    assert client.get("/api/v1/mail/held", headers=agent).json() == []
    done = client.get("/api/v1/mail/held", params={"state": "discarded"}, headers=agent).json()
    assert [r["id"] for r in done] == [junk_id]


def test_subject_tag_without_token_does_not_thread(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    tid, _, _ = bobs_ticket(desk, inbound, outbox, worker)
    # Authenticated, same organization, the right tag: but no token, so a new ticket.
    raw = customer_mail(BOB, f"Re: [#{tid}] Class recording lost", "Another thing.", message_id="<b2@cm>")
    assert "created" in send(inbound, raw, BOB)
    # A token that is not the ticket's (guessed, or another ticket's) threads nothing either.
    wrong = f"support+t{tid}.{reply_token('another-key', tid)}@desk.test"
    raw = customer_mail(BOB, "Re: x", "Guessed token.", message_id="<b3@cm>", in_reply_to=f"<zhiban.t{tid}.a@d>")
    assert "created" in send(inbound, raw, BOB, to=wrong)
    views = bodies(desk)
    assert views[tid] == ["Lost at 09:00."]
    assert sorted(b for t, bs in views.items() if t != tid for b in bs) == ["Another thing.", "Guessed token."]


def test_reply_with_the_token_of_the_sent_mail_threads(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    tid, reply_to, message_id = bobs_ticket(desk, inbound, outbox, worker)
    assert reply_to.startswith(f"support+t{tid}.") and reply_to.endswith("@desk.test")
    assert f".t{tid}." in message_id
    # The reply's recipient is the Reply-To address (no thread headers at all) ...
    send(inbound, customer_mail(BOB, "Re: x", "First answer.", message_id="<b4@cm>"), BOB, to=reply_to)
    # ... or it answers the confirmation (In-Reply-To), to the plain desk address.
    raw = customer_mail(BOB, "Re: x", "Second answer.", message_id="<b5@cm>", in_reply_to=message_id)
    send(inbound, raw, BOB)
    assert bodies(desk) == {tid: ["Lost at 09:00.", "First answer.", "Second answer."]}


@pytest.mark.parametrize(
    ("results", "filed"),
    [
        (f"{AUTHSERV}; dkim=pass header.d=classmate.test header.s=s1", True),
        (f"{AUTHSERV}; dkim=pass header.i=@mail.classmate.test", False),  # a subdomain does not speak for its parent
        (f"{AUTHSERV}; spf=pass smtp.mailfrom=bounces@classmate.test", True),
        (f"{AUTHSERV}; dkim=pass header.d=evil.test; spf=pass smtp.mailfrom=evil.test", False),  # not aligned
        (f"{AUTHSERV}; dmarc=fail header.from=classmate.test; dkim=fail header.d=classmate.test", False),
        (f"{AUTHSERV.upper()}; dmarc=pass header.from=classmate.test", True),
        ("mx.attacker.test; dmarc=pass header.from=classmate.test", False),  # untrusted authserv-id
        (f"{AUTHSERV}.evil.test; dkim=pass header.d=classmate.test", False),
        (f"{AUTHSERV}; dmarc=pass header.from=classmate.test;;;=", False),  # unreadable: ignored
        # Longer than any MTA writes (the parser is slow on those): ignored, not parsed.
        (f"{AUTHSERV}; dmarc=pass header.from=classmate.test (" + "padding\r\n " * 1000 + ")", False),
    ],
)
def test_authentication_results_are_honoured_only_from_the_trusted_mta(
    desk: Desk, world: World, inbound: InboundListener, results: str, filed: bool
) -> None:
    raw = customer_mail(BOB, "Stream down", "Help.", message_id="<a1@cm>", authenticated=False)
    raw = f"Authentication-Results: {results}\r\n".encode() + raw
    answer = send(inbound, raw, BOB)
    assert ("created" in answer) is filed and ("held" in answer) is (not filed)
    assert len(all_tickets(desk)) == (1 if filed else 0)


# --- DKIM verified by the desk itself ---------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A fresh RSA key: (private PEM, public key as the p= of a DKIM DNS record)."""
    folder: Path = tmp_path_factory.mktemp("dkim")
    pem = folder / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(pem), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(pem), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return pem.read_bytes(), base64.b64encode(der).decode()


@pytest.fixture
def dkim_inbound(desk: Desk, dkim_key: tuple[bytes, str]) -> Iterator[tuple[InboundListener, list[bytes]]]:
    """The real listener whose DKIM lookups go to a test zone publishing classmate.test's key."""
    lookups: list[bytes] = []

    def dns(name: bytes, timeout: float = 5) -> bytes | None:
        lookups.append(name)
        if name == b"s1._domainkey.classmate.test.":
            return f"v=DKIM1; k=rsa; p={dkim_key[1]}".encode()
        return None

    listener = start_inbound(desk, host="127.0.0.1", port=unused_port(), dkim_dns=dns)
    try:
        yield listener, lookups
    finally:
        listener.stop()


def test_mail_with_a_valid_dkim_signature_of_the_from_domain_is_filed(
    desk: Desk, world: World, dkim_inbound: tuple[InboundListener, list[bytes]], dkim_key: tuple[bytes, str]
) -> None:
    listener, lookups = dkim_inbound

    def signed(message_id: str, body: str, domain: bytes = b"classmate.test") -> bytes:
        raw = customer_mail(BOB, "Signed", body, message_id=message_id, authenticated=False)
        headers = [b"from", b"to", b"subject", b"message-id"]
        return dkim.sign(raw, b"s1", domain, dkim_key[0], include_headers=headers) + raw

    assert "created" in send(listener, signed("<d1@cm>", "Genuine."), BOB)
    # Altered after signing: the signature fails, the mail is held.
    tampered = signed("<d2@cm>", "Original.").replace(b"Original.", b"Altered!!")
    assert "held" in send(listener, tampered, BOB)
    # Signed by a domain that is not the From: domain (its key lookup fails here): held.
    assert "held" in send(listener, signed("<d3@cm>", "Other.", domain=b"evil.test"), BOB)
    assert [c.body for v in all_tickets(desk) for c in v.comments] == ["Genuine."]
    assert b"s1._domainkey.classmate.test." in lookups and b"s1._domainkey.evil.test." in lookups


# --- MIME bounds ------------------------------------------------------------------------------


def nested_mime(levels: int) -> bytes:
    """A mail whose multiparts nest `levels` deep around one text part."""
    head = f"From: {BOB}\r\nTo: {DESK_ADDRESS}\r\nSubject: nested\r\nMessage-ID: <n{levels}@cm>\r\n"
    head += "MIME-Version: 1.0\r\n"
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(levels))
    closing = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(levels)))
    return (head + opening + "Content-Type: text/plain\r\n\r\nhello\r\n" + closing).encode()


def test_deeply_nested_mime_is_refused_for_good(desk: Desk, world: World, inbound: InboundListener) -> None:
    for levels in (2_000, 25):
        answer = smtp_send(inbound.port, nested_mime(levels), mail_from=BOB)
        assert (answer.code, answer.stage) == (554, "data"), answer  # permanent: the sender must not retry
        assert "MIME nesting deeper than 20 levels" in answer.text
    wide = (
        f"From: {BOB}\r\nSubject: wide\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n"
        + "--w\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 600
        + "--w--\r\n"
    ).encode()
    answer = smtp_send(inbound.port, wide, mail_from=BOB)
    assert answer.code == 554 and "more than 500 MIME parts" in answer.text
    assert all_tickets(desk) == []
    # Ordinary nesting (mixed > alternative > …) is read as before.
    shallow = f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=classmate.test\r\n".encode()
    assert "created" in send(inbound, shallow + nested_mime(5), BOB)
    assert [c.body for v in all_tickets(desk) for c in v.comments] == ["hello"]


def test_a_full_held_queue_defers_new_unauthenticated_mail(
    desk: Desk, world: World, inbound: InboundListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zhiban.mail.service.MAX_HELD", 2)
    for i in range(2):
        send(inbound, customer_mail(BOB, "x", "y", message_id=f"<q{i}@cm>", authenticated=False), BOB)
    full = smtp_send(
        inbound.port, customer_mail(BOB, "x", "y", message_id="<q9@cm>", authenticated=False), mail_from=BOB
    )
    assert (full.code, full.stage) == (452, "data") and "already wait for an agent" in full.text
    # Authenticated mail is not held, so it still gets through.
    assert "created" in send(inbound, customer_mail(BOB, "Real", "Hello.", message_id="<q10@cm>"), BOB)


def test_nul_characters_are_dropped_not_retried_forever(desk: Desk, world: World, inbound: InboundListener) -> None:
    # PostgreSQL text cannot hold NUL: storing it failed with 451 and the sender retried for days.
    for authenticated in (True, False):
        raw = customer_mail(BOB, "x", "y", message_id=f"<nul{authenticated}@cm>", authenticated=authenticated)
        raw = raw.replace(b"Subject: x", b"Subject: =?utf-8?q?Stream=00_down?=").replace(b"\ny\n", b"\nCut\x00 off\n")
        assert send(inbound, raw, BOB).split()[1] == ("created" if authenticated else "held")
    [view] = all_tickets(desk)
    assert (view.ticket.subject, [c.body for c in view.comments]) == ("Stream down", ["Cut off"])


def test_held_mail_page_for_agents(desk: Desk, inbound: InboundListener, client: TestClient) -> None:
    build_world(desk, passwords=True)
    send(
        inbound, customer_mail(BOB, "Refund now", "Pay to this account.", message_id="<p1@e>", authenticated=False), BOB
    )
    send(inbound, customer_mail(BOB, "Stream down", "Since 10:00.", message_id="<p2@e>", authenticated=False), BOB)
    web_login(client, BOB)
    assert client.get("/agent/mail/held", headers={"accept": "text/html"}).status_code == 403
    client.cookies.clear()
    web_login(client, "agent@vendor.test")
    page = client.get("/agent/mail/held")
    assert page.status_code == 200 and "Refund now" in page.text and "no aligned DMARC" in page.text
    assert "held.title" not in page.text and "held.release" not in page.text  # every label translated
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    ids = [int(i) for i in re.findall(r'action="/agent/mail/held/(\d+)/discard"', page.text)]
    real, spam = ids  # newest first
    assert client.post(f"/agent/mail/held/{spam}/discard", follow_redirects=False).status_code == 403  # no CSRF
    r = client.post(f"/agent/mail/held/{spam}/discard", data={"csrf_token": token.group(1)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/agent/mail/held")
    r = client.post(f"/agent/mail/held/{real}/release", data={"csrf_token": token.group(1)}, follow_redirects=False)
    [view] = all_tickets(desk)
    assert (r.status_code, r.headers["location"]) == (303, f"/tickets/{view.ticket.id}")
    assert (view.ticket.subject, view.comments[0].body) == ("Stream down", "Since 10:00.")
    assert "Refund now" not in client.get("/agent/mail/held").text
