"""RTC fields recognized in a customer's mail: a realistic mixed-language mail through the real inbound listener
files a ticket with its app, channel, users, SDK and time; lines that fail a check are dropped, never the mail.
And a reply to a merged duplicate goes on in the ticket kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fastapi.testclient import TestClient

from tests.mail.mail_kit import Outbox, customer_mail, smtp_send
from tests.tenancy import World, bearer
from zhiban.apps import service as apps
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.mail.inbound import InboundListener
from zhiban.mail.rtc_fields import fields_in_text, parse_time

ALICE = "alice@liveco.test"

MIXED = """您好，

我们的直播间今天下午开始卡顿，观众反馈很严重 (viewers in Shanghai see freezes every ~10 s).

App ID: liveco-live
频道：room-8842
用户ID：u1001, u1002、u1003
SDK: 4.3.2 (Android)
发生时间：2026-11-20 14:30

Could you check our media servers? The log is below.

--
王小明 | LiveCo 运维
> App ID: some-quoted-app
"""


def test_mixed_language_mail_files_a_ticket_with_its_rtc_fields(
    desk: Desk, world: World, inbound: InboundListener, client: TestClient
) -> None:
    with desk.transaction() as s:
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="liveco-live", organization_id=world.liveco)
    raw = customer_mail(ALICE, "直播卡顿 / stream freezes", MIXED, message_id="<rtc1@liveco.test>")
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    [ticket] = client.get("/api/v1/tickets", headers=bearer(world.agent_token)).json()
    assert ticket["channel"] == "email"
    assert ticket["fields"] == {
        "app_id": "liveco-live",
        "channel_name": "room-8842",
        "user_ids": ["u1001", "u1002", "u1003"],
        "sdk_version": "4.3.2",
        "platform": "android",
        # 14:30 without a zone is read in LiveCo's zone (Asia/Shanghai): 06:30 UTC.
        "occurred_at": "2026-11-20T06:30:00Z",
    }
    assert (
        "直播间今天下午开始卡顿"
        in client.get(f"/api/v1/tickets/{ticket['id']}", headers=bearer(world.agent_token)).json()["comments"][0][
            "body"
        ]
    )


def test_fields_that_fail_their_check_are_dropped_not_the_mail(
    desk: Desk, world: World, inbound: InboundListener, client: TestClient
) -> None:
    with desk.transaction() as s:  # ClassMate's app: LiveCo's mail may not name it
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="classmate-edu", organization_id=world.classmate)
    body = "App ID: classmate-edu\nChannel: lobby\nSDK: not-a-version\nTime: 2019-01-01 10:00\n\nhelp"
    raw = customer_mail(ALICE, "Audio issue", body, message_id="<rtc2@liveco.test>")
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    [ticket] = client.get("/api/v1/tickets", headers=bearer(world.agent_token)).json()
    fields = ticket["fields"]
    assert fields["app_id"] is None and fields["occurred_at"] is None and fields["sdk_version"] is None
    assert fields["channel_name"] == "lobby"


def test_fields_in_text_variants() -> None:
    found = fields_in_text(
        "Channel name: Lobby 1\r\nWhen: 2026-12-07T06:30:00Z\r\nSDK version: v4.2.0-beta.1 on iOS\r\nUIDs: 7;8"
    )
    assert found == {
        "channel_name": "Lobby 1",
        "occurred_at": datetime(2026, 12, 7, 6, 30, tzinfo=UTC),
        "sdk_version": "4.2.0-beta.1",
        "platform": "ios",
        "user_ids": ["7", "8"],
    }
    assert fields_in_text("房间号：8842\n平台：微信小程序\nappid：abc-1 (prod)") == {
        "channel_name": "8842",
        "platform": "miniapp",
        "app_id": "abc-1",
    }
    # The first line for a field wins; a quoted line is someone else's; prose with a colon is not a field.
    assert fields_in_text("Channel: a\nChannel: b\n> Channel: c") == {"channel_name": "a"}
    assert fields_in_text("We tried this: nothing works\n时间：昨天下午") == {}


def test_parse_time_reads_offsets() -> None:
    assert parse_time("2026/12/7 14:30:05 +08:00") == datetime(
        2026, 12, 7, 14, 30, 5, tzinfo=timezone(timedelta(hours=8))
    )
    assert parse_time("2026-12-07 14:30 UTC+8") == datetime(2026, 12, 7, 14, 30, tzinfo=timezone(timedelta(hours=8)))
    assert parse_time("2026-12-07 14:30 GMT") == datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert parse_time("2026-12-07 14:30") == datetime(2026, 12, 7, 14, 30)
    assert parse_time("2026-13-40 14:30") is None and parse_time("yesterday") is None


def test_a_reply_to_a_merged_duplicate_goes_to_the_ticket_kept(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker, client: TestClient
) -> None:
    raw = customer_mail(ALICE, "Audio drops", "room 42 drops audio", message_id="<d1@liveco.test>")
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    worker.run_once()
    confirmation = outbox.received[0]
    agent = bearer(world.agent_token)
    [dup] = [t["id"] for t in client.get("/api/v1/tickets", headers=agent).json()]
    kept = client.post(
        "/api/v1/tickets", json={"subject": "Audio drops (kept)", "body": "b"}, headers=bearer(world.alice_token)
    ).json()["id"]
    assert client.post(f"/api/v1/tickets/{dup}/merge", json={"into": kept}, headers=agent).status_code == 200
    raw = customer_mail(
        ALICE,
        f"Re: [#{dup}] Audio drops",
        "still dropping",
        message_id="<d2@l>",
        in_reply_to=confirmation["Message-ID"],
    )
    assert smtp_send(inbound.port, raw, mail_from=ALICE).code == 250
    assert len(client.get("/api/v1/tickets", headers=agent).json()) == 2  # no third ticket
    bodies = [c["body"] for c in client.get(f"/api/v1/tickets/{kept}", headers=agent).json()["comments"]]
    assert bodies[-1] == "still dropping"
