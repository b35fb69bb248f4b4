"""The Atom feed parsed back with xml.etree: required RFC 4287 elements, tag: ids, times, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.status.atom import FeedInfo, incident_feed, tag_uri
from zhiban.status.model import StatusIncident, StatusUpdate

NS = {"a": "http://www.w3.org/2005/Atom"}
INFO = FeedInfo(
    title="LiveCo status 状态",
    authority="status.example.com",
    minted=date(2026, 1, 1),
    self_url="https://status.example.com/feed.atom",
    page_url="https://status.example.com/",
)
T = datetime(2026, 10, 3, 19, 0, tzinfo=UTC)


def url(incident: StatusIncident) -> str:
    return f"https://status.example.com/incidents/{incident.incident_id}"


def incidents() -> list[StatusIncident]:
    edge = StatusIncident(
        "INC-7",
        "Video freezes in cn-east <b>& more</b>",
        "critical",
        ("media", "cn-east"),
        T,
        T + timedelta(hours=1, minutes=10),
        (
            StatusUpdate(T + timedelta(minutes=2), "investigating", "Freeze rate up on china-mobile\x07"),
            StatusUpdate(T + timedelta(hours=1, minutes=10), "resolved", "Edge node sh-edge-07 drained <ok>"),
        ),
    )
    older = StatusIncident("INC 6", "信令延迟", "minor", ("signaling",), T - timedelta(days=3), None, ())
    return [older, edge]


def parse(data: bytes) -> ET.Element:
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(data)


def test_feed_has_the_required_elements() -> None:
    root = parse(incident_feed(INFO, incidents(), url, now=T + timedelta(days=1)))
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert root.findtext("a:id", namespaces=NS) == "tag:status.example.com,2026-01-01:status"
    assert root.findtext("a:title", namespaces=NS) == "LiveCo status 状态"
    # The feed's updated is its newest entry's: INC-7 resolved at 20:10 UTC.
    assert root.findtext("a:updated", namespaces=NS) == "2026-10-03T20:10:00Z"
    assert root.findtext("a:author/a:name", namespaces=NS) == "zhiban"
    links = {link.get("rel"): link.get("href") for link in root.findall("a:link", NS)}
    assert links == {"self": INFO.self_url, "alternate": INFO.page_url}

    entries = root.findall("a:entry", NS)
    assert [e.findtext("a:id", namespaces=NS) for e in entries] == [
        "tag:status.example.com,2026-01-01:incident/INC-7",  # changed last, listed first
        "tag:status.example.com,2026-01-01:incident/INC%206",  # a space is percent-encoded
    ]
    for entry in entries:
        for required in ("a:id", "a:title", "a:updated"):
            assert entry.findtext(required, namespaces=NS), required
        assert entry.find("a:link[@rel='alternate']", NS) is not None


def test_entry_times_text_and_escaping() -> None:
    root = parse(incident_feed(INFO, incidents(), url, now=T + timedelta(days=1)))
    entry = root.findall("a:entry", NS)[0]
    # Markup in a title is text, not markup: it round-trips exactly.
    assert entry.findtext("a:title", namespaces=NS) == "[resolved] Video freezes in cn-east <b>& more</b>"
    assert entry.findtext("a:published", namespaces=NS) == "2026-10-03T19:00:00Z"
    assert entry.findtext("a:updated", namespaces=NS) == "2026-10-03T20:10:00Z"
    assert entry.findtext("a:summary", namespaces=NS) == "Edge node sh-edge-07 drained <ok>"
    assert {c.get("term") for c in entry.findall("a:category", NS)} == {"critical", "media", "cn-east"}
    content = entry.find("a:content", NS)
    assert content is not None and content.get("type") == "html"
    html = content.text or ""
    # Escaped once inside the HTML, newest update first; the BEL control character is dropped.
    assert "drained &lt;ok&gt;" in html and html.index("Resolved") < html.index("Investigating")
    assert "\x07" not in html
    older = root.findall("a:entry", NS)[1]
    assert older.findtext("a:title", namespaces=NS) == "[ongoing] 信令延迟"
    assert older.find("a:summary", NS) is None  # no update posted yet


def test_an_empty_feed_is_still_valid() -> None:
    now = datetime(2026, 10, 5, 8, 30, 15, tzinfo=UTC)
    root = parse(incident_feed(INFO, [], url, now=now))
    assert root.findtext("a:updated", namespaces=NS) == "2026-10-05T08:30:15Z"
    assert root.findall("a:entry", NS) == []


def test_feed_settings_are_checked() -> None:
    assert tag_uri(INFO, "incident/a b") == "tag:status.example.com,2026-01-01:incident/a%20b"
    with pytest.raises(InvalidInput):
        FeedInfo("x", "not a host!", date(2026, 1, 1), "https://a/", "https://a/")
    with pytest.raises(InvalidInput):
        FeedInfo("x", "status.example.com", date(2026, 1, 1), "javascript:alert(1)", "https://a/")
