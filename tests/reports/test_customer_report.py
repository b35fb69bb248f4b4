"""The customer SLA report: figures, HTML escaping, and a real PDF with a Chinese organization name."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from zhiban.reports.customer import CustomerSlaReport, customer_sla_report, plan_targets
from zhiban.reports.model import ClockFact, IncidentFact, TicketFact
from zhiban.reports.pdf import FontFile, ReportFontMissing, find_cjk_font, render_pdf
from zhiban.reports.render import render_html
from zhiban.reports.texts import format_duration, format_pct
from zhiban.sla.plans import ENTERPRISE

ORG_NAME = "直播科技有限公司 LiveCo"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_ticket(ticket_id: int, org: str, priority: str, day: int) -> TicketFact:
    created = utc(2026, 10, day, 2)
    return TicketFact(
        ticket_id, org, "Enterprise", priority, created, created + timedelta(minutes=10),
        created + timedelta(hours=3), 0, 1, "solved", "network", "CN", "Asia/Shanghai",
    )  # fmt: skip


def fr(ticket_id: int, state: str, due: datetime, done: datetime | None, breached: datetime | None) -> ClockFact:
    return ClockFact(ticket_id, "Enterprise", "first_response", state, due, done, breached, 900)


def build(name: str = ORG_NAME) -> CustomerSlaReport:
    tickets = [
        make_ticket(101, "org-live", "P1", 3),
        make_ticket(102, "org-live", "P1", 9),
        make_ticket(103, "org-live", "P2", 12),
        make_ticket(900, "org-other", "P1", 12),  # another customer's: must not show
    ]
    clocks = [
        fr(101, "fulfilled", utc(2026, 10, 3, 2, 15), utc(2026, 10, 3, 2, 10), None),
        fr(102, "breached", utc(2026, 10, 9, 2, 15), utc(2026, 10, 9, 2, 40), utc(2026, 10, 9, 2, 15)),
        ClockFact(102, "Enterprise", "resolution", "fulfilled", utc(2026, 10, 9, 6), utc(2026, 10, 9, 5), None, 14400),
        fr(103, "active", utc(2026, 10, 12, 3), None, None),
        fr(900, "breached", utc(2026, 10, 12, 2, 15), None, utc(2026, 10, 12, 2, 15)),
    ]
    incidents = [
        IncidentFact(
            "INC-7", "media", "network", utc(2026, 10, 2, 19), utc(2026, 10, 2, 19, 4), utc(2026, 10, 2, 20, 10),
            "telemetry", frozenset({"org-live"}), utc(2026, 10, 2, 19, 6), "上海边缘节点 sh-edge-07 丢包", "critical",
        ),
        IncidentFact(
            "INC-8", "media", "network", utc(2026, 10, 5), None, utc(2026, 10, 6), "alert", frozenset({"org-other"}),
        ),
    ]  # fmt: skip
    return customer_sla_report(
        organization_id="org-live",
        organization_name=name,
        plan="Enterprise",
        year=2026,
        month=10,
        targets=plan_targets(ENTERPRISE),
        tickets=tickets,
        clocks=clocks,
        incidents=incidents,
        now=utc(2026, 11, 1, 3),
        tz="Asia/Shanghai",
        monthly_fee=Decimal("20000"),
    )


def test_report_figures() -> None:
    report = build()
    rows = {(r.target.priority, r.target.metric): r for r in report.rows}
    assert rows[("P1", "first_response")].target.target == timedelta(minutes=15)
    assert (rows[("P1", "first_response")].met, rows[("P1", "first_response")].breached) == (1, 1)
    assert rows[("P1", "resolution")].compliance.pct == 100.0
    assert (rows[("P2", "first_response")].open, rows[("P2", "first_response")].compliance.pct) == (1, None)
    assert rows[("P1", "periodic_update")].compliance.pct is None
    # decided cycles of org-live: met 101-fr, 102-resolution; breached 102-fr → 2 / 3.
    assert report.compliance.pct == pytest.approx(200 / 3)
    assert [b.ticket_id for b in report.breaches] == [102]
    assert [i.incident_id for i in report.incidents] == ["INC-7"]
    # INC-7 lasted 70 min of the 31-day Shanghai month: 100 × (1 − 70 / 44,640) = 99.843 %.
    assert report.availability.pct == pytest.approx(100 * (44_640 - 70) / 44_640)
    # Compliance 66.7 % < 95 % → 50 % (availability alone would earn 10 %); 50 % of 20,000 = 10,000.
    assert (report.credit.credit_pct, report.credit.amount) == (50, Decimal("10000.00"))


def test_formats() -> None:
    assert format_duration(timedelta(minutes=15)) == "15 min"
    assert format_duration(timedelta(hours=1, minutes=10)) == "1 h 10 min"
    assert format_duration(timedelta(hours=1, minutes=10), "zh") == "1小时10分钟"
    assert format_duration(timedelta(days=2, hours=3, minutes=5)) == "2 d 3 h"
    assert format_duration(timedelta(seconds=42)) == "42 s"
    assert format_pct(99.84318) == "99.843 %"
    assert format_pct(100.0) == "100 %"
    assert format_pct(None, "zh") == "无数据"


def test_html_report_shows_the_figures_and_escapes_names() -> None:
    html = render_html(build(), "zh")
    assert ORG_NAME in html
    assert "SLA 服务报告" in html and "99.843 %" in html and "10,000.00 CNY" in html
    assert "首次公开回复迟了 25 分钟" in html
    assert "org-other" not in html and "INC-8" not in html
    hostile = render_html(build('<script>alert("x")</script>'), "en")
    assert "<script>" not in hostile and "&lt;script&gt;" in hostile


def _pdf_text_streams(pdf: bytes) -> list[bytes]:
    """The decompressed content of every Flate stream in a PDF."""
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(match.group(1)))
        except zlib.error:
            out.append(match.group(1))
    return out


def test_pdf_embeds_a_cjk_font_with_the_organization_name() -> None:
    pdf = render_pdf(build(), find_cjk_font(), "zh")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/FontFile2" in pdf  # the TrueType font is embedded, not referenced
    # fpdf2 writes a ToUnicode map for the embedded subset: every character of the name must be in it.
    cmaps = b"".join(s for s in _pdf_text_streams(pdf) if b"beginbfchar" in s or b"beginbfrange" in s)
    for char in "直播科技有限公司":
        assert f"<{ord(char):04X}>".encode() in cmaps, char
    assert len(pdf) < 400_000  # subsetting keeps a report small


def test_font_lookup_prefers_the_environment_and_explains_a_missing_font(tmp_path: Path) -> None:
    font = tmp_path / "x.ttc"
    font.write_bytes(b"not really a font")
    assert find_cjk_font(f"{font}#2", ()) == FontFile(font, 2)
    assert find_cjk_font("", (FontFile(font, 1),)) == FontFile(font, 1)
    with pytest.raises(ReportFontMissing, match="fonts-wqy-microhei"):
        find_cjk_font("", (FontFile(tmp_path / "none.ttf"),))
    with pytest.raises(ReportFontMissing, match="no such font file"):
        find_cjk_font(str(tmp_path / "gone.ttf"), ())
