"""Ticket mail end to end: smtplib → the real inbound listener → tickets; agent replies → a real SMTP server.

Runs on SQLite and PostgreSQL (the `desk` fixture).
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.mail.mail_kit import BASE_URL, DESK_ADDRESS, Outbox, customer_mail, dmarc_pass, smtp_send
from tests.tenancy import World, bearer
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.engine import Worker, enqueue, list_jobs
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role
from zhiban.identity.store import PersonRow
from zhiban.mail import store as mail_store
from zhiban.mail.inbound import InboundListener
from zhiban.mail.model import MAX_INBOUND_BYTES
from zhiban.mail.service import queue_agent_reply
from zhiban.notify.service import DELIVER_JOB as SEND_JOB
from zhiban.tickets import service as tickets
from zhiban.tickets.service import TicketView
from zhiban.tickets.store import TicketRow

ALICE = "alice@liveco.test"
BOB = "bob@classmate.test"
STAFF = Principal(person_id="test", role=Role.AGENT, organization_id=None)


def all_tickets(desk: Desk) -> list[TicketView]:
    with desk.transaction() as s:
        rows = tickets.list_tickets(s, STAFF, limit=200)
        return [tickets.get_ticket(s, STAFF, row.id) for row in rows]


def mail_rows(desk: Desk) -> list[tuple[int, str, str, str, str]]:
    with desk.transaction() as s:
        rows = s.scalars(select(mail_store.MailMessageRow).order_by(mail_store.MailMessageRow.id))
        return [(r.ticket_id, r.direction, r.purpose, r.message_id, r.state) for r in rows]


def file_by_mail(inbound: InboundListener, desk: Desk, subject: str = "Video freezes in cn-east") -> TicketView:
    raw = customer_mail(ALICE, subject, "Viewers see 卡顿 since 03:00.", message_id="<m1@liveco.test>")
    answer = smtp_send(inbound.port, raw, mail_from=ALICE)
    assert answer.code == 250, answer
    [view] = all_tickets(desk)
    return view


def test_new_ticket_from_mail_gets_a_threaded_confirmation(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    view = file_by_mail(inbound, desk)
    t = view.ticket
    assert (t.channel, t.organization_id, t.requester_id, t.status) == ("email", world.liveco, world.alice_id, "new")
    assert t.subject == "Video freezes in cn-east"
    assert [c.body for c in view.comments] == ["Viewers see 卡顿 since 03:00."]

    assert worker.run_once() == 1
    [mail] = outbox.received
    assert mail["To"] == ALICE and mail["From"] == DESK_ADDRESS
    assert mail["Subject"] == f"[#{t.id}] Video freezes in cn-east"
    assert mail["In-Reply-To"] == "<m1@liveco.test>"
    assert mail["References"].split() == ["<m1@liveco.test>"]
    assert mail["Auto-Submitted"] == "auto-generated"  # the customer's auto-responder must not answer
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"{BASE_URL}/tickets/{t.id}" in text and f"#{t.id}" in text
    assert mail_rows(desk) == [
        (t.id, "in", "customer", "<m1@liveco.test>", "received"),
        (t.id, "out", "confirmation", mail["Message-ID"], "sent"),
    ]
    # The same mail delivered again (a sender's retry) is recognised and not filed twice.
    again = customer_mail(ALICE, "Video freezes in cn-east", "Viewers see 卡顿.", message_id="<m1@liveco.test>")
    assert smtp_send(inbound.port, again, mail_from=ALICE).code == 250
    assert len(all_tickets(desk)) == 1


def test_reply_threads_by_in_reply_to_and_drops_the_quote(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    tid = file_by_mail(inbound, desk).ticket.id
    worker.run_once()
    confirmation = outbox.received[0]["Message-ID"]
    body = (
        "Still freezing after the restart.\n\n"
        f"On Sat, 21 Nov 2026 at 03:01, zhiban <{DESK_ADDRESS}> wrote:\n> We have received your request."
    )
    # No tag in the subject: only the headers tie it to the ticket.
    raw = customer_mail(
        ALICE,
        "Re: still broken",
        body,
        message_id="<m2@liveco.test>",
        in_reply_to=confirmation,
        references=["<m1@liveco.test>", confirmation],
    )
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    [view] = all_tickets(desk)
    assert view.ticket.id == tid
    assert [c.body for c in view.comments][-1] == "Still freezing after the restart."
    assert [c.author_id for c in view.comments] == [world.alice_id, world.alice_id]


def test_reply_threads_by_reply_token_for_anyone_of_the_organization(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker, clock: FrozenClock
) -> None:
    tid = file_by_mail(inbound, desk).ticket.id
    worker.run_once()
    confirmation = outbox.received[0]
    with desk.transaction() as s:
        carol = identity.create_person(
            s, clock, email="carol@liveco.test", name="Carol", role=Role.CUSTOMER, organization_id=world.liveco
        )
        carol_id = carol.id
    # Carol writes to the confirmation's Reply-To address; Alice answers it (In-Reply-To).
    reply_to = confirmation["Reply-To"]
    raw = customer_mail("Carol <carol@liveco.test>", f"RE: [zhiban #{tid}] x", "Log attached.", message_id="<c1@l>")
    assert smtp_send(inbound.port, raw, mail_from="carol@liveco.test", to=reply_to).code == 250
    raw = customer_mail(
        ALICE,
        f"Re: [#{tid}] Video freezes",
        "And the app id is 42.",
        message_id="<m3@l>",
        in_reply_to=confirmation["Message-ID"],
    )
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    [view] = all_tickets(desk)
    assert [(c.author_id, c.body) for c in view.comments[1:]] == [
        (carol_id, "Log attached."),
        (world.alice_id, "And the app id is 42."),
    ]


def test_another_tenant_cannot_write_into_a_ticket(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    victim = file_by_mail(inbound, desk).ticket.id
    worker.run_once()
    confirmation = outbox.received[0]["Message-ID"]
    # Bob (ClassMate) names LiveCo's ticket by tag and by the desk's own Message-ID.
    raw = customer_mail(
        BOB,
        f"Re: [#{victim}] Video freezes",
        "Injected text",
        message_id="<b1@classmate.test>",
        in_reply_to=confirmation,
        references=["<m1@liveco.test>", confirmation],
    )
    assert smtp_send(inbound.port, raw, mail_from=BOB).code == 250
    views = {v.ticket.id: v for v in all_tickets(desk)}
    assert [c.body for c in views[victim].comments] == ["Viewers see 卡顿 since 03:00."]
    # Bob's mail became his own ticket, in his own organization.
    [bobs] = [v for tid, v in views.items() if tid != victim]
    assert (bobs.ticket.organization_id, bobs.ticket.requester_id) == (world.classmate, world.bob_id)
    assert bobs.ticket.subject == "Re: Video freezes" and bobs.comments[0].body == "Injected text"


DSN = (
    "From: Mail Delivery System <MAILER-DAEMON@mx.liveco.test>\r\n"
    f"To: {DESK_ADDRESS}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    "Message-ID: <dsn1@mx.liveco.test>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    "--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system: the mail could not be delivered.\r\n"
    "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.liveco.test\r\n\r\n"
    "Final-Recipient: rfc822; gone@liveco.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"
)


def test_auto_replies_and_bounces_are_accepted_and_dropped(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    tid = file_by_mail(inbound, desk).ticket.id
    worker.run_once()
    confirmation = outbox.received[0]["Message-ID"]
    before = (all_tickets(desk), mail_rows(desk))
    out_of_office = [
        {"Auto_Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"X_Autoreply": "yes"},
    ]
    for i, headers in enumerate(out_of_office):
        raw = customer_mail(
            ALICE,
            f"Re: [#{tid}] Out of office",
            "I am away.",
            message_id=f"<ooo{i}@l>",
            in_reply_to=confirmation,
            **headers,
        )
        answer = smtp_send(inbound.port, raw, mail_from=ALICE)
        assert answer.code == 250 and "ignored" in answer.text
    # A bounce comes with an empty return path.
    answer = smtp_send(inbound.port, DSN.encode(), mail_from="")
    assert answer.code == 250 and "ignored" in answer.text
    after = (all_tickets(desk), mail_rows(desk))
    assert [[c.body for c in v.comments] for v in after[0]] == [[c.body for c in v.comments] for v in before[0]]
    assert after[1] == before[1]


def test_unknown_senders_and_staff_are_refused(desk: Desk, world: World, inbound: InboundListener) -> None:
    for sender in ("stranger@elsewhere.test", "agent@vendor.test"):
        raw = customer_mail(sender, "Help", "Hello", message_id=f"<{sender}>")
        answer = smtp_send(inbound.port, raw, mail_from=sender)
        assert (answer.code, answer.stage) == (550, "data")
    assert all_tickets(desk) == [] and mail_rows(desk) == []


def test_malformed_and_oversized_mail_is_refused(desk: Desk, world: World, inbound: InboundListener) -> None:
    no_from = b"To: support@desk.test\r\nSubject: who am I\r\n\r\nhello\r\n"
    assert smtp_send(inbound.port, no_from, mail_from=ALICE).code == 554
    broken = f"From: {ALICE}\r\nSubject: x\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n".encode()
    assert smtp_send(inbound.port, broken, mail_from=ALICE).code == 554

    line = b"x" * 76 + b"\r\n"  # base64 lines
    big = customer_mail(ALICE, "Huge log", "see below", message_id="<big@l>") + line * (MAX_INBOUND_BYTES // 78 + 10)
    assert len(big) > MAX_INBOUND_BYTES
    # A client that declares SIZE is refused before it sends; one that does not, after DATA.
    declared = smtp_send(inbound.port, big, mail_from=ALICE, size=True)
    assert (declared.code, declared.stage) == (552, "mail")
    undeclared = smtp_send(inbound.port, big, mail_from=ALICE)
    assert (undeclared.code, undeclared.stage) == (552, "data")
    assert all_tickets(desk) == [] and mail_rows(desk) == []


def test_chinese_mail_in_gbk_is_stored_as_written(desk: Desk, world: World, inbound: InboundListener) -> None:
    subject = "【紧急】直播间卡顿：朱镕基路节点"
    body = "您好：\n今晚 03:00 起 cn-east 区域 china-mobile 用户大面积卡顿，镕字测试。\n谢谢！"

    def word(text: str, charset: str) -> str:
        return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="

    raw = (
        f"Authentication-Results: {dmarc_pass(ALICE)}\r\n"
        f"From: {word('王小明', 'gbk')} <{ALICE}>\r\nTo: {DESK_ADDRESS}\r\n"
        f"Subject: {word(subject[:8], 'gbk')}\r\n {word(subject[8:], 'gbk')}\r\n"
        "Message-ID: <gbk1@liveco.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=GB2312\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode("ascii") + body.replace("\n", "\r\n").encode("gbk")
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    [view] = all_tickets(desk)
    assert view.ticket.subject == subject
    assert view.comments[0].body == body


def _send_jobs(desk: Desk) -> int:
    with desk.transaction() as s:
        return len(list_jobs(s, kind=SEND_JOB, limit=1000))


def test_agent_reply_is_mailed_once_with_thread_headers(
    desk: Desk, world: World, client: TestClient, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    tid = file_by_mail(inbound, desk).ticket.id
    worker.run_once()
    confirmation = outbox.received[0]["Message-ID"]
    agent = bearer(world.agent_token)
    note = client.post(f"/api/v1/tickets/{tid}/comments", json={"body": "edge suspect", "public": False}, headers=agent)
    assert note.status_code == 201
    reply = client.post(f"/api/v1/tickets/{tid}/comments", json={"body": "We drained sh-edge-07."}, headers=agent)
    assert reply.status_code == 201
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert len(outbox.received) == 2  # the confirmation, then the reply; the internal note sends nothing
    mail = outbox.received[1]
    assert mail["To"] == ALICE
    assert mail["Subject"] == f"[#{tid}] Video freezes in cn-east"
    assert mail["In-Reply-To"] == confirmation
    assert mail["References"].split() == ["<m1@liveco.test>", confirmation]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("We drained sh-edge-07.") and f"{BASE_URL}/tickets/{tid}" in text
    assert "edge suspect" not in text
    rows = mail_rows(desk)
    assert rows[-1] == (tid, "out", "reply", mail["Message-ID"], "sent")

    # The reply event handled a second time, and the job delivered a second time (a lost lease):
    # still one mail.
    jobs = _send_jobs(desk)
    with desk.transaction() as s:
        ticket = s.get(TicketRow, tid)
        assert ticket is not None
        again = queue_agent_reply(
            s, desk.clock, ticket, author_id=world.agent_id, comment_id=reply.json()["id"], settings=get_settings()
        )
        assert again is not None and again.message_id == mail["Message-ID"]
        mail_id = again.id
    assert _send_jobs(desk) == jobs
    with desk.transaction() as s:
        enqueue(s, SEND_JOB, {"mail_id": mail_id}, due_at=desk.clock.now())
    assert worker.run_once() == 1
    assert len(outbox.received) == 2
    assert mail_rows(desk) == rows

    # The customer answers the reply: it threads by the reply's Message-ID.
    raw = customer_mail(ALICE, "Re: thanks", "Back to normal.", message_id="<m9@l>", in_reply_to=mail["Message-ID"])
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    [view] = all_tickets(desk)
    assert view.comments[-1].body == "Back to normal."


def test_a_busy_server_is_retried_and_a_refusal_is_recorded(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker, clock: FrozenClock
) -> None:
    outbox.mode = "busy"
    tid = file_by_mail(inbound, desk).ticket.id
    assert worker.run_once() == 1
    assert outbox.received == []
    with desk.transaction() as s:
        [row] = [r for r in mail_store.messages_of(s, tid) if r.direction == "out"]
        assert row.state == "queued" and row.error is not None and "451" in row.error
        [job] = list_jobs(s, kind=SEND_JOB)
        assert (job.state, job.attempts) == ("pending", 1)
    outbox.mode = "ok"
    clock.advance(timedelta(minutes=11))  # past the engine's largest backoff
    assert worker.run_once() == 1
    assert len(outbox.received) == 1
    assert mail_rows(desk)[-1][-1] == "sent"

    # A recipient the server refuses for good: recorded as failed, the job finishes, nothing is retried.
    outbox.mode = "refuse"
    with desk.transaction() as s:
        agent = s.get(PersonRow, world.agent_id)
        assert agent is not None
        tickets.add_comment(s, clock, identity.principal_of(agent), tid, body="Fixed.")
    assert worker.run_once() == 1
    with desk.transaction() as s:
        last = mail_store.messages_of(s, tid)[-1]
        assert (last.purpose, last.state) == ("reply", "failed") and last.error and "550" in last.error
        assert all(job.state == "done" for job in list_jobs(s, kind=SEND_JOB))
    clock.advance(timedelta(hours=1))
    assert worker.run_once() == 0
    assert len(outbox.received) == 1


def test_without_an_smtp_server_mail_is_logged_not_sent(
    desk: Desk, world: World, inbound: InboundListener, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZHIBAN_SMTP_URL", raising=False)
    get_settings.cache_clear()
    assert get_settings().smtp_url == ""
    file_by_mail(inbound, desk)
    assert worker.run_once() == 1
    assert mail_rows(desk)[-1][-1] == "logged"
    with desk.transaction() as s:
        assert s.scalar(select(func.count()).select_from(mail_store.MailMessageRow)) == 2
        assert [job.state for job in list_jobs(s, kind=SEND_JOB)] == ["done"]
    get_settings.cache_clear()


def test_a_send_job_queued_before_the_outbox_is_handed_to_it_and_sent_once(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    view = file_by_mail(inbound, desk)
    assert worker.run_once() == 1  # the confirmation
    legacy = "<zhiban.legacy.1@desk.test>"
    with desk.transaction() as s:
        row = mail_store.MailMessageRow(
            ticket_id=view.ticket.id, message_id=legacy, direction="out", comment_id=view.comments[0].id,
            address=ALICE, purpose="reply", dedup_key=f"mail:reply:{view.comments[0].id}",
            thread_refs="<m1@liveco.test>", state="queued", created_at=desk.clock.now(),
        )  # fmt: skip
        s.add(row)
        s.flush()
        for _ in range(2):  # a lost lease ran the old job twice
            enqueue(s, "mail.send", {"mail_id": row.id}, due_at=desk.clock.now())
    assert worker.run_once() == 2  # both old jobs hand the mail over; the outbox keeps it once
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert [m["Message-ID"] for m in outbox.received][1:] == [legacy]
    assert outbox.received[1]["In-Reply-To"] == "<m1@liveco.test>"
    assert mail_rows(desk)[-1] == (view.ticket.id, "out", "reply", legacy, "sent")


def test_ticket_mail_is_in_the_one_outbox(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    from zhiban.notify import outbox as notify_outbox

    tid = file_by_mail(inbound, desk).ticket.id
    assert worker.run_once() == 1
    with desk.transaction() as s:
        [row] = notify_outbox.recent(s, ticket_id=tid)
        assert (row.kind, row.state, row.destination["config"]["to"]) == ("ticket.confirmation", "sent", [ALICE])
        assert row.message["message_id"] == outbox.received[0]["Message-ID"]
