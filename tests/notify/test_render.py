"""zh/en texts for pages and notices."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from tests.notify.notify_fakes import page_notice
from zhiban.core.errors import InvalidInput
from zhiban.notify.model import MAX_SUBJECT
from zhiban.notify.render import render_incident


def test_zh_page_has_every_form_and_shanghai_time() -> None:
    message = render_incident(page_notice(), "zh", "k1")
    assert message.subject == "【P1】cn-east 视频卡顿率升至 9%（sh-edge-07） — rtc-media"
    # 19:00 UTC on Friday is 03:00 on Saturday in Shanghai.
    assert "开始时间：2026-11-21 03:00 UTC+08:00" in message.text
    assert "确认：https://desk.example.com/ack/inc-42?t=abc" in message.text
    assert message.markdown is not None and "- **服务**：rtc-media" in message.markdown
    assert message.short_text == (
        "【值班】P1 rtc-media：cn-east 视频卡顿率升至 9%（sh-edge-07） 确认：https://desk.example.com/ack/inc-42?t=abc"
    )
    assert message.spoken_text is not None and "http" not in message.spoken_text
    assert message.link("acknowledge") is not None
    assert message.event == "incident.page"
    assert message.language == "zh"


def test_en_page_in_another_zone() -> None:
    message = render_incident(replace(page_notice(), timezone="Europe/London"), "en", "k1")
    assert "Since: 2026-11-20 19:00 UTC+00:00" in message.text
    assert "Severity: P1" in message.text
    assert message.html is not None and "<th align='left'>Service</th><td>rtc-media</td>" in message.html


def test_notice_to_customers_has_no_acknowledge_link() -> None:
    notice = replace(page_notice(), kind="notice")
    for language in ("en", "zh"):
        message = render_incident(notice, language, "n1")
        assert message.link("acknowledge") is None
        assert "/ack/" not in message.text and "/ack/" not in (message.short_text or "")
        assert message.link("incident") is not None
        assert message.event == "incident.notice"
    assert message.subject.startswith("【故障通知】")  # the last one rendered is Chinese


def test_html_escapes_the_title() -> None:
    notice = replace(page_notice(), title="<script>alert(1)</script> & co")
    message = render_incident(notice, "en", "k")
    assert message.html is not None
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html


def test_long_values_still_make_a_valid_message() -> None:
    notice = replace(page_notice(), title="很长的标题" * 40, service="s" * 100)
    message = render_incident(notice, "zh", "k")
    assert len(message.subject) == MAX_SUBJECT


def test_multiline_title_becomes_one_line() -> None:
    message = render_incident(replace(page_notice(), title="edge down\r\nagain"), "en", "k")
    assert message.subject.startswith("[P1] edge down again")


@pytest.mark.parametrize(
    "change",
    [
        {"since": datetime(2026, 11, 21, 3, 0)},
        {"timezone": "Mars/Olympus"},
        {"title": " "},
        {"severity": "x" * 21},
    ],
)
def test_bad_notices_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        render_incident(replace(page_notice(), **change), "en", "k")  # type: ignore[arg-type]
