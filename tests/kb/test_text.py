"""Bilingual tokenization."""

from __future__ import annotations

from zhiban.kb.glossary import default_glossary
from zhiban.kb.text import detect_language, strip_noise, tokenize


def test_rtc_dictionary_keeps_terms_whole() -> None:
    for term in ("卡顿", "回声", "推流", "鉴权", "首帧", "丢包", "音画不同步", "旁路推流", "弱网", "云录制"):
        assert term in tokenize(f"用户反馈{term}问题"), term


def test_identifiers_and_error_codes_survive() -> None:
    tokens = tokenize("joinChannel failed with 109, UID_CONFLICT on che.video.renderer")
    assert {"joinchannel", "join", "channel", "109", "uid_conflict", "conflict", "render"} <= set(tokens)
    assert "with" not in tokens  # stop word


def test_english_is_stemmed_so_inflections_meet() -> None:
    assert tokenize("freezing")[0] == tokenize("freezes")[0]
    assert tokenize("Reconnection")[0] == tokenize("reconnections")[0]


def test_language_detection() -> None:
    assert detect_language("web端控制台报错 UID_CONFLICT") == "zh"
    assert detect_language("token过期 109") == "zh"
    assert detect_language("black screen after joinChannel") == "en"
    assert detect_language("SRS 边缘集群 edge 配置不生效") == "zh"
    assert detect_language("SRS edge cluster config with origin servers, 配置") == "en"


def test_glossary_is_bilingual_and_large_enough() -> None:
    glossary = default_glossary()
    assert len(glossary) >= 150
    concepts, rest = glossary.find_zh("视频黑屏怎么办")
    assert any(("black", "screen") in c.translated for c in concepts)
    assert "黑屏" not in rest
    concepts_en, left = glossary.find_en(tokenize("black screen on android"))
    assert any(("黑屏",) in c.translated for c in concepts_en)
    assert "black" not in left


def test_ticket_noise_is_stripped_but_codes_and_versions_stay() -> None:
    ticket = (
        "发生时间：2024-06-23 06:04（北京时间） 影响 20% 的用户 uid：813888 App ID：f5bed10a**** "
        "[12:01:33.120] joinChannel 报错 -17，错误码 1033，SDK 4.2.6，联系 ops@example.com"
    )
    tokens = tokenize(strip_noise(ticket))
    assert {"17", "1033", "4", "2", "6", "joinchannel"} <= set(tokens)
    for noise in ("2024", "06", "23", "04", "20", "813888", "f5bed10a", "12", "01", "33", "120", "ops", "example"):
        assert noise not in tokens, noise


def test_a_long_number_named_as_an_error_code_is_evidence_not_an_id() -> None:
    # Twilio Video's codes are five digits; uids and channel numbers are too. The word before tells them apart.
    for ticket, code, noise in (
        ("Error 53405: media connection failed for uid 813888", "53405", "813888"),
        ("错误码 10012，用户 8138881 进不了频道", "10012", "8138881"),
        ("channel 99887766 fails with ERR 53000 since 12:01", "53000", "99887766"),
        ("error code: 20101 on room 4456789", "20101", "4456789"),
    ):
        tokens = tokenize(strip_noise(ticket))
        assert code in tokens and noise not in tokens, (ticket, tokens)
