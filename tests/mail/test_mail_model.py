"""Pure rules of ticket mail: charsets, auto-reply detection, quote trimming, tags and references."""

from __future__ import annotations

import base64

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.mail.model import (
    MAX_SENT_REFERENCES,
    decode_bytes,
    html_to_text,
    outbound_subject,
    parse_mail,
    sent_references,
    subject_priority,
    ticket_subject,
    ticket_token,
    trim_quoted,
)

ALICE = "alice@liveco.test"


def b64_word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def test_gb2312_label_with_gbk_only_characters_decodes_fully() -> None:
    text = "朱镕基 直播间卡顿"
    # 镕 is outside GB2312: mail clients label such text GB2312 anyway, and a strict decoder fails on it.
    with pytest.raises(UnicodeEncodeError):
        text.encode("gb2312")
    assert decode_bytes(text.encode("gbk"), "GB2312") == text
    assert decode_bytes(text.encode("gbk"), '"gbk"') == text
    # No charset declared: UTF-8 first, then GB18030.
    assert decode_bytes(text.encode("utf-8"), None) == text
    assert decode_bytes(text.encode("gbk"), None) == text
    # An unknown label and bytes valid in neither: replacement characters, never an exception.
    assert decode_bytes("café".encode("latin-1"), "no-such-charset") == "caf\ufffd"


def test_chinese_subject_from_and_body_in_gbk() -> None:
    subject, body = "【紧急】视频卡顿 cn-east", "你好：\n镕 节点 sh-edge-07 丢包。"
    raw = (
        f"From: {b64_word('王小明', 'gbk')} <Alice@LiveCo.test>\r\n"
        f"Subject: {b64_word(subject[:6], 'gb2312')}\r\n {b64_word(subject[6:], 'gbk')}\r\n"
        "Message-ID: <m1@liveco.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(body.encode("gbk"))
    mail = parse_mail(raw, ALICE)
    assert mail.sender == ALICE  # addresses compare lower-cased
    assert mail.subject == subject
    assert mail.text == body
    assert mail.message_id == "<m1@liveco.test>"


def test_raw_8bit_headers_and_html_only_body() -> None:
    raw = (
        b"From: alice@liveco.test\r\nSubject: \xe8\xa7\x86\xe9\xa2\x91 freezes\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{color:red}</style></head><body><p>First&nbsp;line</p>"
        b"<div>second<br>third</div><script>alert(1)</script></body></html>"
    )
    mail = parse_mail(raw)
    assert mail.subject == "视频 freezes"
    assert mail.text.split("\n") == ["First line", "", "second", "third"]


def test_html_blockquote_is_marked_as_quote_and_trimmed() -> None:
    text = html_to_text("<p>Thanks, fixed.</p><blockquote><p>Old answer</p></blockquote>")
    assert "> Old answer" in text
    assert trim_quoted(text) == "Thanks, fixed."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Still freezing.\n\nOn Sat, 21 Nov 2026 at 03:05, Desk <support@desk.test> wrote:\n> We are on it.", None),
        ("Still freezing.\n\nOn Sat, 21 Nov 2026 at 03:05, Desk <support@desk.test>\nwrote:\n> We are on it.", None),
        ("Still freezing.\n\n-----Original Message-----\nFrom: Desk\nSent: today\n\nWe are on it.", None),
        ("Still freezing.\n\n------------------ 原始邮件 ------------------\n发件人: Desk", None),
        ("Still freezing.\n\n在 2026年11月21日 03:05，Desk <support@desk.test> 写道：\n> 我们在处理", None),
        ("Still freezing.\n\nFrom: Desk <support@desk.test>\nSent: Saturday\nSubject: [#7] x", None),
        ("Still freezing.\n-- \nAlice, LiveCo SRE\n+86 138 0000 0000", None),
        ("Still freezing.\n\n> We are on it.\n> Regards", None),
        # Interleaved answers are the customer's own words: kept.
        (
            "> Which region?\ncn-east\n> Which ISP?\nchina-mobile",
            "> Which region?\ncn-east\n> Which ISP?\nchina-mobile",
        ),
        # Nothing but quote: keep it all rather than store an empty reply.
        ("> only a quote", "> only a quote"),
        # "wrote:" inside a sentence is not a reply header.
        ("The SDK wrote: error 109 at 03:00.\nPlease check.", "The SDK wrote: error 109 at 03:00.\nPlease check."),
    ],
)
def test_trim_quoted(body: str, expected: str | None) -> None:
    assert trim_quoted(body) == (expected if expected is not None else "Still freezing.")


@pytest.mark.parametrize(
    ("subject", "token"),
    [
        ("Re: [#1234] Video freezes", 1234),
        ("回复：[zhiban #77] 视频卡顿", 77),
        ("RE: [ZHIBAN#5] x", 5),
        ("Order #1234 is late", None),
        ("[#] empty", None),
        ("[#12345678901234] too long", None),
    ],
)
def test_ticket_token(subject: str, token: int | None) -> None:
    assert ticket_token(subject) == token


def test_subjects() -> None:
    assert ticket_subject("Fwd: [#9]  Video   freezes ") == "Fwd: Video freezes"
    assert ticket_subject("  ") == "(no subject)"
    assert len(ticket_subject("x" * 500)) == 200
    assert outbound_subject(42, "Video  freezes") == "[#42] Video freezes"
    assert ticket_token(outbound_subject(42, "Re: [#9] old")) == 42
    # A leading priority tag names the new ticket's priority and leaves its subject.
    assert subject_priority(" [p1] 直播卡顿") == "P1" and ticket_subject(" [p1] 直播卡顿") == "直播卡顿"
    assert subject_priority("Re: [P1] old") is None and subject_priority("[P5] no") is None


def test_sent_references_keep_the_first_and_the_latest() -> None:
    thread = [f"<m{i}@x.test>" for i in range(40)]
    refs = sent_references(thread)
    assert len(refs) == MAX_SENT_REFERENCES
    assert refs[0] == "<m0@x.test>" and refs[-1] == "<m39@x.test>"
    assert sent_references(["<a@x>", "<b@x>", "<a@x>"]) == ("<a@x>", "<b@x>")


def _with(headers: str, content_type: str = "text/plain") -> bytes:
    return f"From: {ALICE}\r\nSubject: Out of office\r\n{headers}Content-Type: {content_type}\r\n\r\nAway.".encode()


@pytest.mark.parametrize(
    ("raw", "envelope", "reason"),
    [
        (_with("Auto-Submitted: auto-replied\r\n"), ALICE, "Auto-Submitted"),
        (_with("Precedence: bulk\r\n"), ALICE, "Precedence"),
        (_with("Precedence: junk\r\n"), ALICE, "Precedence"),
        (_with("Precedence: list\r\n"), ALICE, "Precedence"),
        (_with("X-Autoreply: yes\r\n"), ALICE, "X-Autoreply"),
        (_with(""), "", "empty return path"),
        (_with("Return-Path: <>\r\n"), None, "Return-Path"),
        (_with("", 'multipart/report; report-type=delivery-status; boundary="b"'), ALICE, "multipart/report"),
        (_with("").replace(ALICE.encode(), b"MAILER-DAEMON@mx.liveco.test"), None, "MAILER-DAEMON"),
    ],
)
def test_machine_written_mail_is_recognised(raw: bytes, envelope: str | None, reason: str) -> None:
    mail = parse_mail(raw, envelope)
    assert mail.auto_reason is not None and reason.lower() in mail.auto_reason.lower()


def test_person_written_mail_is_not_auto() -> None:
    assert parse_mail(_with("Auto-Submitted: no\r\nPrecedence: first-class\r\n"), ALICE).auto_reason is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b"Subject: no sender\r\n\r\nhello", "no sender"),
        (b"From: not an address\r\nSubject: x\r\n\r\nhello", "no sender"),
        (b"From: a@x.test, b@y.test\r\nSubject: x\r\n\r\nhello", "more than one"),
        (b"From: a@x.test\r\nContent-Type: multipart/mixed\r\n\r\nno boundary here", "MIME"),
    ],
)
def test_malformed_mail_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_mail(raw, "a@x.test")


def test_thread_ids_put_the_direct_parent_first() -> None:
    raw = (
        b"From: alice@liveco.test\r\nSubject: Re: x\r\nIn-Reply-To: <c@d>\r\n"
        b"References: <a@d>\r\n <b@d> <c@d>\r\n\r\nok"
    )
    assert parse_mail(raw).thread_ids() == ("<c@d>", "<b@d>", "<a@d>")
