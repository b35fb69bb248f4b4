"""Slack channels as a door: events signed by slack_sdk's SignatureVerifier, a mention files a ticket, thread
replies answer it, an urgent word pages through the on-duty plan, an agent's reply is posted into the thread
once (received by a real local server answering like Slack's Web API, which slack_sdk's WebClient also talks to)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from tests.chat.chat_kit import (
    SLACK_ALICE,
    SLACK_BOT,
    SLACK_CHANNEL,
    SLACK_SECRET,
    SLACK_TOKEN,
    DeskClock,
    comments_of,
    count,
    pages_to,
    setup,
    slack_api,
    slack_event,
    slack_post,
    tickets_of,
)
from tests.incidents.incident_kit import drain, worker
from tests.notify.notify_fakes import provider_server
from tests.tenancy import bearer
from zhiban.chat.store import ChatEventRow, ChatMessageRow, ChatThreadRow
from zhiban.desk import Desk
from zhiban.identity.store import RateCountRow
from zhiban.tickets.store import TicketRow

BAD_SIGNATURE = "https://zhiban.dev/problems/chat-bad-signature"


def _nothing_left(desk: Desk) -> None:
    for table in (TicketRow, ChatEventRow, ChatMessageRow, ChatThreadRow, RateCountRow):
        assert count(desk, table) == 0, table.__tablename__


def test_zhiban_and_slack_sdk_agree_on_the_signature(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    challenge = {
        "token": "t",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    answered = slack_post(client, desk, challenge)
    assert answered.status_code == 200 and answered.json() == {"challenge": challenge["challenge"]}
    # A request slack_sdk calls invalid (another secret) zhiban refuses, with nothing read or written.
    body = json.dumps(slack_event("Ev0BAD", "<@U0BOT0ZHIBAN> help", "1763665200.000100")).encode()
    refused = slack_post(client, desk, body, secret="not-the-signing-secret")
    assert refused.status_code == 401 and refused.json()["type"] == BAD_SIGNATURE
    sent_ts = str(int(desk.clock.now().timestamp()))
    wrong = SignatureVerifier("not-the-signing-secret").generate_signature(timestamp=sent_ts, body=body)
    assert not SignatureVerifier(SLACK_SECRET, clock=DeskClock(desk)).is_valid(body, sent_ts, wrong)
    # Signed right but six minutes old (or ahead): a replay outside the window, refused by both.
    stale = slack_post(client, desk, body, skew=-360)
    assert stale.status_code == 401 and "window" in stale.json()["detail"]
    assert slack_post(client, desk, body, skew=360).status_code == 401
    old_ts = str(int(desk.clock.now().timestamp()) - 360)
    old_sig = SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=old_ts, body=body)
    assert not SignatureVerifier(SLACK_SECRET, clock=DeskClock(desk)).is_valid(body, old_ts, old_sig)
    # No signature at all; a tampered body under a good signature.
    bare = client.post("/api/v1/chat/slack/events", content=body, headers={"Content-Type": "application/json"})
    assert bare.status_code == 401 and bare.json()["type"] == BAD_SIGNATURE
    ts = str(int(desk.clock.now().timestamp()))
    good = SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=ts, body=body)
    tampered = client.post(
        "/api/v1/chat/slack/events",
        content=body.replace(b"help", b"pwnd"),
        headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": good},
    )
    assert tampered.status_code == 401
    _nothing_left(desk)


def test_unbound_oversized_and_malformed_events_leave_nothing(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    unbound = slack_post(
        client, desk, slack_event("Ev1", "<@U0BOT0ZHIBAN> 直播卡顿", "1763665200.000200", channel="C0STRANGER")
    )
    assert unbound.status_code == 200 and unbound.json()["action"] == "unbound"
    big = slack_event("Ev2", "<@U0BOT0ZHIBAN> " + "x" * 70_000, "1763665200.000300")
    too_big = slack_post(client, desk, big)
    assert too_big.status_code == 413 and too_big.json()["type"].endswith("payload-too-large")
    for malformed in (b"{not json", b"[1, 2]", json.dumps({"type": "event_callback", "event_id": "Ev3"}).encode()):
        answer = slack_post(client, desk, malformed)
        assert answer.status_code == 422 and answer.json()["type"] == "https://zhiban.dev/problems/chat-malformed-event"
    no_channel = slack_event("Ev4", "<@U0BOT0ZHIBAN> hi", "1763665200.000400")
    del no_channel["event"]["channel"]
    assert slack_post(client, desk, no_channel).status_code == 422
    _nothing_left(desk)


def test_a_mention_files_once_a_thread_reply_answers_and_an_urgent_word_pages(client: TestClient, desk: Desk) -> None:
    chat = setup(client, desk)
    root = "1763665200.000500"
    mention = slack_event("Ev0MENTION", f"<@{SLACK_BOT}> 推流失败 stream push fails for room-8812\nsince 02:50", root)
    filed = slack_post(client, desk, mention)
    assert filed.status_code == 200 and filed.json()["action"] == "created", filed.text
    ticket_id = filed.json()["ticket_id"]
    [ticket] = tickets_of(desk)
    assert (ticket.channel, ticket.priority, ticket.subject) == (
        "chat",
        "P3",
        "推流失败 stream push fails for room-8812",
    )
    assert ticket.requester_id == chat.world.alice_id
    # Slack retries the delivery (same event_id), and sends the same message again as a `message` event.
    assert slack_post(client, desk, mention).json()["action"] == "duplicate"
    again = slack_event("Ev0MESSAGE", mention["event"]["text"], root, kind="message")
    assert slack_post(client, desk, again).json()["action"] == "duplicate"
    # Chatter in the channel that is neither a mention nor in the ticket's thread is not filed.
    chatter = slack_event("Ev0CHAT", "lunch?", "1763665200.000600", kind="message")
    assert slack_post(client, desk, chatter).json()["action"] == "ignored"
    assert len(tickets_of(desk)) == 1 and pages_to(desk, chat.primary) == 0
    # A reply in the thread is the customer's message; an urgent word in it raises P1 and pages once.
    reply = slack_event("Ev0REPLY", "now the whole region is down", "1763665260.000700", kind="message", thread_ts=root)
    answered = slack_post(client, desk, reply)
    assert answered.json() == {
        "ok": True,
        "action": "replied",
        "ticket_id": ticket_id,
        "reason": "added to the ticket, urgent",
    }
    assert comments_of(desk, ticket_id)[-1] == "now the whole region is down"
    [ticket] = tickets_of(desk)
    assert ticket.priority == "P1" and pages_to(desk, chat.primary) == 1
    seen = client.get(f"/api/v1/tickets/{ticket_id}", headers=bearer(chat.world.alice_token)).json()
    assert seen["on_duty"]["paged_at"] is not None
    # Another urgent word: still the one page (on duty never pages twice for a ticket).
    more = slack_event("Ev0MORE", "紧急!!", "1763665270.000800", kind="message", thread_ts=root)
    assert slack_post(client, desk, more).json()["action"] == "replied" and pages_to(desk, chat.primary) == 1
    events = client.get("/api/v1/chat/events", headers=bearer(chat.world.admin_token)).json()
    assert [e["action"] for e in events] == ["replied", "replied", "created"]


def test_an_urgent_mention_files_p1_and_pages(client: TestClient, desk: Desk) -> None:
    chat = setup(client, desk)
    filed = slack_post(client, desk, slack_event("Ev1URG", f"<@{SLACK_BOT}> 宕机 all rooms", "1763665300.000100"))
    assert filed.json()["action"] == "created"
    [ticket] = tickets_of(desk)
    assert ticket.priority == "P1" and pages_to(desk, chat.primary) == 1
    # The command form does it too, whatever the words.
    filed = slack_post(client, desk, slack_event("Ev2URG", f"<@{SLACK_BOT}> !p1 rooms freeze", "1763665300.000200"))
    assert tickets_of(desk)[-1].priority == "P1"


def test_an_agents_reply_reaches_the_thread_once_and_its_echo_is_ignored(
    client: TestClient, desk: Desk, allow_loopback_egress: None
) -> None:
    with provider_server(slack_api()) as server:
        chat = setup(client, desk, slack_api=server.url + "/api")
        root = "1763665400.000100"
        filed = slack_post(client, desk, slack_event("Ev0M", f"<@{SLACK_BOT}> 回声消除失效 echo on iOS", root))
        ticket_id = filed.json()["ticket_id"]
        agent = bearer(chat.world.agent_token)
        said = client.post(f"/api/v1/tickets/{ticket_id}/comments", json={"body": "请升级到 4.3.1 SDK"}, headers=agent)
        assert said.status_code == 201, said.text
        note = {"body": "internal: known AEC bug", "public": False}
        assert client.post(f"/api/v1/tickets/{ticket_id}/comments", json=note, headers=agent).status_code == 201
        w = worker(desk)
        drain(w)
        desk.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
        drain(w)
        assert len(server.received) == 1  # once: the internal note is never posted
        sent = server.received[0]
        doc = sent.json()
        assert sent.path == "/api/chat.postMessage" and sent.headers["authorization"] == "Bearer " + chat_token()
        assert doc["channel"] == SLACK_CHANNEL and doc["thread_ts"] == root
        assert "请升级到 4.3.1 SDK" in doc["text"] and "internal" not in doc["text"]
        # slack_sdk's own client posting the same reply sends the same method, auth and fields.
        sdk = WebClient(token=chat_token(), base_url=server.url + "/api/")
        answer = sdk.chat_postMessage(channel=SLACK_CHANNEL, thread_ts=root, text="from slack_sdk")
        assert answer["ok"] and len(server.received) == 2
        by_sdk = server.received[1]
        assert by_sdk.path == sent.path and by_sdk.headers["authorization"] == sent.headers["authorization"]
        assert set(by_sdk.json()) == set(doc)
        # Slack sends the bot's own post back as a message event in the thread: not filed, no loop.
        with desk.sessions() as s:
            out = s.scalar(select(ChatMessageRow).where(ChatMessageRow.direction == "out"))
            assert out is not None and out.state == "sent" and out.message_id
            echo_ts = out.message_id
        echo = slack_event(
            "Ev0ECHO", doc["text"], echo_ts, kind="message", thread_ts=root, user=SLACK_BOT, bot_id="B0BOT"
        )
        assert slack_post(client, desk, echo).json()["action"] == "ignored"
        assert len(comments_of(desk, ticket_id)) == 3  # the mention, the reply, the note: no echo
        drain(w)
        assert len(server.received) == 2
        # The ticket shows where its messages came from.
        trail = client.get(f"/api/v1/chat/tickets/{ticket_id}/messages", headers=agent).json()
        assert [(m["direction"], m["state"]) for m in trail] == [("in", "received"), ("out", "sent")]


def chat_token() -> str:
    return SLACK_TOKEN


def test_a_groups_rate_is_bounded(client: TestClient, desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    from zhiban.chat import service
    from zhiban.identity.ratelimit import Limit

    setup(client, desk)
    monkeypatch.setattr(service, "GROUP_RATE", Limit("chat.group", 2, timedelta(minutes=1)))
    for n in range(2):
        event = slack_event(f"Ev{n}", f"<@{SLACK_BOT}> issue {n}", f"1763665500.00010{n}")
        assert slack_post(client, desk, event).json()["action"] == "created"
    third = slack_post(client, desk, slack_event("Ev9", f"<@{SLACK_BOT}> issue 9", "1763665500.000109"))
    assert third.status_code == 429 and third.json()["type"].endswith("rate-limited")
    assert len(tickets_of(desk)) == 2
    desk.clock.advance(timedelta(minutes=1, seconds=1))  # type: ignore[attr-defined]
    # Slack retries the same event later: it is taken then (its id was not spent on the refusal).
    assert (
        slack_post(client, desk, slack_event("Ev9", f"<@{SLACK_BOT}> issue 9", "1763665500.000109")).json()["action"]
        == "created"
    )


def test_unmapped_users_file_as_the_group_requester_or_not_at_all(client: TestClient, desk: Desk) -> None:
    chat = setup(client, desk)
    stranger = slack_event("EvS1", f"<@{SLACK_BOT}> who am I", "1763665600.000100", user="U0STRANGER")
    assert slack_post(client, desk, stranger).json()["action"] == "ignored" and tickets_of(desk) == []
    admin = bearer(chat.world.admin_token)
    assert client.delete(f"/api/v1/chat/groups/slack:{SLACK_CHANNEL}", headers=admin).status_code == 204
    body = {"platform": "slack", "group_id": SLACK_CHANNEL, "organization": "liveco", "requester": "alice@liveco.test"}
    assert client.post("/api/v1/chat/groups", json=body, headers=admin).status_code == 201
    stranger["event_id"] = "EvS2"
    assert slack_post(client, desk, stranger).json()["action"] == "created"
    assert tickets_of(desk)[0].requester_id == chat.world.alice_id
    # A requester of another organization, or a Slack user mapped to ClassMate's Bob, files nothing for LiveCo.
    body["requester"] = "bob@classmate.test"
    body["group_id"] = "C0OTHER"
    refused = client.post("/api/v1/chat/groups", json=body, headers=admin)
    assert refused.status_code == 422
    mapped = {"platform": "slack", "user_id": "U0BOB", "person": chat.world.bob_id}
    assert client.put("/api/v1/chat/people", json=mapped, headers=admin).status_code == 200
    bob = slack_event("EvS3", f"<@{SLACK_BOT}> from bob", "1763665600.000300", user="U0BOB")
    assert slack_post(client, desk, bob).json()["action"] == "created"
    assert tickets_of(desk)[-1].requester_id == chat.world.alice_id  # the group's requester, never Bob's org
    assert {t.organization_id for t in tickets_of(desk)} == {chat.world.liveco}
    assert SLACK_ALICE


def test_two_events_of_one_message_file_once_even_when_neither_saw_the_other(
    client: TestClient, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zhiban.chat import store as chat_store

    setup(client, desk)
    # As two deliveries racing would: the second does not see the first's message row before it claims.
    monkeypatch.setattr(chat_store, "message_seen", lambda *args: None)
    root = "1763665700.000100"
    text = f"<@{SLACK_BOT}> 卡顿"
    assert slack_post(client, desk, slack_event("EvA", text, root)).json()["action"] == "created"
    second = slack_post(client, desk, slack_event("EvB", text, root, kind="message"))
    assert second.status_code == 200 and second.json()["action"] == "duplicate"
    assert len(tickets_of(desk)) == 1


def test_a_closed_tickets_thread_opens_a_follow_up_on_a_new_mention(client: TestClient, desk: Desk) -> None:
    chat = setup(client, desk)
    root = "1763665800.000100"
    first = slack_post(client, desk, slack_event("EvC1", f"<@{SLACK_BOT}> 回声", root)).json()["ticket_id"]
    agent = bearer(chat.world.agent_token)
    for status in ("solved", "closed"):
        moved = client.post(f"/api/v1/tickets/{first}/status", json={"status": status}, headers=agent)
        assert moved.status_code == 200, moved.text
    chatter = slack_event("EvC2", "thanks!", "1763665860.000200", kind="message", thread_ts=root)
    assert slack_post(client, desk, chatter).json()["action"] == "ignored"
    assert len(comments_of(desk, first)) == 1
    again = slack_event("EvC3", f"<@{SLACK_BOT}> 又有回声了", "1763665900.000300", thread_ts=root)
    follow = slack_post(client, desk, again).json()
    assert follow["action"] == "created" and follow["ticket_id"] != first
    reply = slack_event("EvC4", "iOS 17 only", "1763665960.000400", kind="message", thread_ts=root)
    assert slack_post(client, desk, reply).json() == {
        "ok": True,
        "action": "replied",
        "ticket_id": follow["ticket_id"],
        "reason": "added to the ticket",
    }
