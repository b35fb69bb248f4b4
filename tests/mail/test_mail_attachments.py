"""Files that come by mail are kept with the message the mail became: smtplib → the real inbound listener → tickets.

Runs on SQLite and PostgreSQL (the `desk` fixture).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from fastapi.testclient import TestClient

from tests.mail.mail_kit import DESK_ADDRESS, Outbox, dmarc_pass, smtp_send
from tests.tenancy import World, bearer
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.mail.inbound import InboundListener

ALICE = "alice@liveco.test"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
DUMP = b'{"PeerConnections": {"1-1": {"stats": {}}}, "UserAgent": "Chrome/131"}'


def mail_with_files(message_id: str, subject: str, text: str, *, in_reply_to: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["Authentication-Results"] = dmarc_pass(ALICE)
    msg["From"] = ALICE
    msg["To"] = DESK_ADDRESS
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(text)
    return msg


def ticket_json(client: TestClient, world: World, ticket_id: int) -> dict:  # type: ignore[type-arg]
    answer = client.get(f"/api/v1/tickets/{ticket_id}", headers=bearer(world.alice_token))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_mail_attachments_are_kept_with_the_message_they_came_with(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker, client: TestClient
) -> None:
    msg = mail_with_files("<att1@liveco.test>", "Echo in room 7", "The dump and a screenshot are attached.")
    msg.add_attachment(DUMP, maintype="application", subtype="json", filename="webrtc_internals_dump.txt")
    msg.add_attachment(PNG, maintype="application", subtype="octet-stream", filename="截图 1.png")  # RFC 2231 name
    msg.add_attachment(b"<html><script>alert(1)</script></html>", maintype="text", subtype="html", filename="x.html")
    answer = smtp_send(inbound.port, msg.as_bytes(policy=SMTP), mail_from=ALICE)
    assert answer.code == 250, answer

    ticket_id = int(answer.text.rpartition("#")[2].rstrip(")"))
    detail = ticket_json(client, world, ticket_id)
    [first] = detail["comments"]
    assert first["body"] == "The dump and a screenshot are attached."  # the text, not the files
    files = {a["filename"]: a for a in first["attachments"]}
    assert set(files) == {"webrtc_internals_dump.txt", "截图 1.png", "x.html"}
    assert files["截图 1.png"]["content_type"] == "image/png"  # sniffed, whatever the mail declared
    assert files["x.html"]["content_type"] == "text/html"
    got = client.get(files["webrtc_internals_dump.txt"]["url"], headers=bearer(world.alice_token))
    assert got.status_code == 200 and got.content == DUMP
    png = client.get(files["截图 1.png"]["url"], headers=bearer(world.agent_token))
    assert png.content == PNG and png.headers["content-disposition"].startswith("attachment;")
    html = client.get(files["x.html"]["url"], headers=bearer(world.agent_token))
    assert html.headers["content-type"] == "application/octet-stream"

    # A reply by mail carries its own file, kept with the reply (not the first message).
    assert worker.run_once() == 1
    confirmation = outbox.received[0]["Message-ID"]
    reply = mail_with_files("<att2@liveco.test>", "Re: Echo", "One more log.", in_reply_to=confirmation)
    reply.add_attachment(b"ICE restart at 03:01\n", maintype="text", subtype="plain", filename="sdk.log")
    assert smtp_send(inbound.port, reply.as_bytes(policy=SMTP), mail_from=ALICE).code == 250
    first, second = ticket_json(client, world, ticket_id)["comments"]
    assert len(first["attachments"]) == 3
    assert [(a["filename"], a["size"]) for a in second["attachments"]] == [("sdk.log", 21)]


def test_files_past_the_limits_are_left_out_and_the_mail_is_still_filed(
    desk: Desk, world: World, inbound: InboundListener, client: TestClient
) -> None:
    desk.settings = desk.settings.model_copy(update={"attachment_max_file_bytes": 1000})
    msg = mail_with_files("<att3@liveco.test>", "Crash", "Log attached.")
    msg.add_attachment(b"x" * 1001, maintype="text", subtype="plain", filename="too-big.log")
    msg.add_attachment(b"fits", maintype="text", subtype="plain", filename="small.log")
    answer = smtp_send(inbound.port, msg.as_bytes(policy=SMTP), mail_from=ALICE)
    assert answer.code == 250 and "created" in answer.text
    ticket_id = int(answer.text.rpartition("#")[2].rstrip(")"))
    [first] = ticket_json(client, world, ticket_id)["comments"]
    assert [a["filename"] for a in first["attachments"]] == ["small.log"]
