"""What a chat message asks for (pure), and how the platforms' events read as messages."""

from __future__ import annotations

import pytest

from tests.chat.chat_kit import FEISHU_BOT, SLACK_BOT, feishu_message, slack_event
from zhiban.chat import feishu, slack
from zhiban.chat.model import (
    MAX_MESSAGE_TEXT,
    ChatMessage,
    GroupWords,
    MalformedEvent,
    Platform,
    bounded_text,
    check_id,
    clean_words,
    is_urgent,
    opens_ticket,
    ticket_subject,
)
from zhiban.core.errors import InvalidInput

WORDS = GroupWords()


@pytest.mark.parametrize(
    ("text", "urgent"),
    [
        ("the stream is DOWN", True),
        ("全部宕机了", True),
        ("紧急：推流失败", True),
        ("!p1 please", True),
        ("download link?", False),  # a Latin word stands alone
        ("countdown timer is off", False),
        ("how do I set the bitrate", False),
    ],
)
def test_urgent_words_and_commands(text: str, urgent: bool) -> None:
    assert is_urgent(text, WORDS) is urgent


def test_a_groups_own_urgent_words_replace_the_defaults() -> None:
    words = GroupWords(urgent_words=("挂了",))
    assert is_urgent("直播挂了", words) and not is_urgent("all down", words)
    assert is_urgent("!urgent", words)  # the command whatever the words


def _message(text: str, mentions: bool = False) -> ChatMessage:
    return ChatMessage(Platform.SLACK, "Ev1", "C1", "1.1", "1.1", "U1", text, mentions, False)


def test_what_opens_a_ticket() -> None:
    assert opens_ticket(_message("anything", mentions=True), WORDS)
    assert not opens_ticket(_message("need help"), WORDS)
    assert opens_ticket(_message("need HELP now"), GroupWords(keywords=("help",)))
    assert not opens_ticket(_message("helpful tip"), GroupWords(keywords=("help",)))


def test_subject_text_and_ids_are_bounded() -> None:
    assert ticket_subject("\n\n  推流   失败 \nmore") == "推流 失败"
    assert len(ticket_subject("x" * 500)) == 120 and ticket_subject("   ") == "Chat message"
    assert bounded_text("y" * (MAX_MESSAGE_TEXT + 5)).endswith("[…cut: the message was longer]")
    for bad in ("", "a b", "x" * 129, "C1\n"):
        with pytest.raises(InvalidInput):
            check_id(bad, "group_id")
    assert clean_words([" Down ", "down", "宕机"], "w") == ("down", "宕机")
    with pytest.raises(InvalidInput):
        clean_words(["w"] * 1 + [f"w{n}" for n in range(25)], "w")


def test_slack_events_as_messages() -> None:
    mention = slack.message(slack_event("Ev1", f"<@{SLACK_BOT}> help <@U0OTHER>", "1.000100"), SLACK_BOT)
    assert mention is not None and mention.mentions_bot and mention.text == "help <@U0OTHER>"
    assert mention.thread_id == "1.000100" and not mention.from_bot
    reply = slack.message(slack_event("Ev2", "more", "2.0", kind="message", thread_ts="1.000100"), SLACK_BOT)
    assert reply is not None and reply.thread_id == "1.000100" and not reply.mentions_bot
    edited = slack_event("Ev3", "x", "3.0", kind="message")
    edited["event"]["subtype"] = "message_changed"
    assert slack.message(edited, SLACK_BOT) is None
    bot = slack.message(slack_event("Ev4", "x", "4.0", kind="message", bot_id="B1"), SLACK_BOT)
    assert bot is not None and bot.from_bot
    other = slack_event("Ev5", "x", "5.0")
    other["event"]["type"] = "reaction_added"
    assert slack.message(other, SLACK_BOT) is None
    with pytest.raises(MalformedEvent):
        slack.message(
            {"event_id": "Ev6", "event": {"type": "message", "text": 5, "ts": "1", "channel": "C"}}, SLACK_BOT
        )


def test_feishu_events_as_messages() -> None:
    doc = feishu_message("ev_1", "推流失败", "om_1")
    message = feishu.message(doc, FEISHU_BOT)
    assert message is not None and message.mentions_bot and message.text == "推流失败"
    assert message.thread_id == "om_1" and message.user_id == "ou_alice_liveco"
    # Without the bot's open_id configured, a mention of someone is not a mention of the desk.
    unknown = feishu.message(doc, "")
    assert unknown is not None and not unknown.mentions_bot
    image = feishu_message("ev_2", "x", "om_2")
    image["event"]["message"]["message_type"] = "image"
    assert feishu.message(image, FEISHU_BOT) is None
    app = feishu.message(feishu_message("ev_3", "x", "om_3", sender_type="app"), FEISHU_BOT)
    assert app is not None and app.from_bot
    bad = feishu_message("ev_4", "x", "om_4")
    bad["event"]["message"]["content"] = "{not json"
    with pytest.raises(MalformedEvent):
        feishu.message(bad, FEISHU_BOT)
    assert feishu.message({"header": {"event_type": "contact.user.created_v3"}, "event": {}}, FEISHU_BOT) is None
