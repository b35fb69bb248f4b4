"""The customer SLA report as a PDF (fpdf2) with an embedded CJK font, so Chinese names render anywhere.

The font is looked up in known Debian locations (fonts-wqy-microhei, fonts-noto-cjk, fonts-wqy-zenhei,
fonts-droid-fallback, fonts-arphic-uming) unless ZHIBAN_REPORT_FONT names a file ("path" or "path#face"
for a face inside a .ttc collection). fpdf2 embeds only the glyphs used (subsetting), so PDFs stay small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zhiban.core.errors import ZhibanError
from zhiban.reports.customer import CustomerSlaReport
from zhiban.reports.render import ReportView, report_view

FONT_ENV = "ZHIBAN_REPORT_FONT"
FONT_FAMILY = "zhiban-cjk"


@dataclass(frozen=True, slots=True)
class FontFile:
    """A font file and the face to use inside it (0 for a plain .ttf/.otf)."""

    path: Path
    face: int = 0


# Checked in order; the face index picks Simplified Chinese inside a collection.
KNOWN_CJK_FONTS: tuple[FontFile, ...] = (
    FontFile(Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),  # Debian fonts-wqy-microhei
    FontFile(Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),  # fonts-noto-cjk: JP, KR, SC, ...
    FontFile(Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),  # fonts-wqy-zenhei
    FontFile(Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"), 0),  # fonts-droid-fallback
    FontFile(Path("/usr/share/fonts/truetype/arphic/uming.ttc"), 0),  # fonts-arphic-uming
)


class ReportFontMissing(ZhibanError):
    type_ = "report-font-missing"
    status = 500
    title = "No CJK font for PDF reports"


def find_cjk_font(configured: str = "", candidates: Sequence[FontFile] = KNOWN_CJK_FONTS) -> FontFile:
    """The font for PDF reports: `configured` ($ZHIBAN_REPORT_FONT, "path[#face]") if set, else the first known
    CJK font installed."""
    configured = configured.strip()
    if configured:
        path_text, _, face_text = configured.partition("#")
        path = Path(path_text)
        if not path.is_file():
            raise ReportFontMissing(f"{FONT_ENV}={configured!r}: no such font file")
        if face_text and not face_text.isdigit():
            raise ReportFontMissing(f"{FONT_ENV}={configured!r}: the face after '#' must be a number")
        return FontFile(path, int(face_text or 0))
    for candidate in candidates:
        if candidate.path.is_file():
            return candidate
    raise ReportFontMissing(
        "no CJK font found for PDF reports: install the Debian package fonts-wqy-microhei "
        f"(or fonts-noto-cjk), or set {FONT_ENV} to a .ttf/.otf/.ttc file; looked in "
        + ", ".join(str(c.path) for c in candidates)
    )


# Layout (mm, pt): A4 portrait with 15 mm margins leaves 180 mm of width.
_MARGIN = 15
_INK = (31, 41, 51)
_MUTED = (97, 110, 124)
_HEAD_FILL = (228, 235, 245)
_TARGET_COLS = (14, 34, 44, 16, 18, 16, 38)
_INCIDENT_COLS = (18, 46, 22, 16, 29, 29, 20)
_BREACH_COLS = (22, 30, 30, 98)
_ON_DUTY_COLS = (34, 18, 43, 43, 42)


def render_pdf(report: CustomerSlaReport, font: FontFile, lang: str = "en") -> bytes:
    """The report as PDF bytes (A4), in `lang`, with the CJK font (`find_cjk_font`) embedded."""
    from fpdf import FPDF  # imported here: only report downloads pay for it
    from fpdf.enums import WrapMode
    from fpdf.fonts import FontFace

    view = report_view(report, lang)
    wrap = WrapMode.CHAR if lang == "zh" else WrapMode.WORD  # Chinese prose has no spaces to break at
    footer = f"{report.organization_name} · {report.year}-{report.month:02d} · zhiban"

    class _Document(FPDF):
        def footer(self) -> None:
            self.set_y(-10)
            self.set_font(FONT_FAMILY, size=7.5)
            self.set_text_color(*_MUTED)
            self.cell(0, 5, footer)
            self.cell(0, 5, f"{self.page_no()}/{{nb}}", align="R")

    pdf = _Document(orientation="portrait", unit="mm", format="A4")
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(auto=True, margin=_MARGIN)
    pdf.add_font(FONT_FAMILY, "", str(font.path), collection_font_number=font.face)
    pdf.set_title(f"{view.labels['title']} {report.organization_name} {report.year}-{report.month:02d}")
    pdf.set_creator("zhiban")
    pdf.set_lang("zh-CN" if lang == "zh" else "en")
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_text_color(*_INK)
    heading_style = FontFace(emphasis="", fill_color=_HEAD_FILL)

    def section(title: str) -> None:
        pdf.ln(4)
        pdf.set_font(FONT_FAMILY, size=13)
        pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(*_MUTED)
        pdf.line(_MARGIN, pdf.get_y(), pdf.w - _MARGIN, pdf.get_y())
        pdf.ln(2)
        pdf.set_font(FONT_FAMILY, size=9)

    def table(headings: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]) -> None:
        with pdf.table(
            col_widths=tuple(widths),
            width=sum(widths),
            align="LEFT",
            text_align="LEFT",
            headings_style=heading_style,
            line_height=5,
            wrapmode=WrapMode.WORD,  # cells: keep times and ids whole; over-long words still break
            padding=1,
        ) as out:
            out.row(list(headings))
            for values in rows:
                out.row(list(values))

    def note(text: str) -> None:
        pdf.set_text_color(*_MUTED)
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT", wrapmode=wrap)
        pdf.set_text_color(*_INK)

    _title_block(pdf, view)
    words = view.labels
    section(words["targets"])
    table(
        [words[k] for k in ("priority", "metric", "target", "met", "breached", "open", "compliance")],
        view.target_rows,
        _TARGET_COLS,
    )
    pdf.ln(3)
    for label, value in view.summary:
        pdf.cell(60, 6, label)
        pdf.cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")

    section(words["incidents"])
    if view.incident_rows:
        headings = [
            words[k] for k in ("incident", "incident_title", "service", "severity", "started", "resolved", "duration")
        ]
        table(headings, view.incident_rows, _INCIDENT_COLS)
    else:
        note(words["no_incidents"])

    section(words["breaches"])
    if view.breach_rows:
        table([words[k] for k in ("ticket", "metric", "due", "cause")], view.breach_rows, _BREACH_COLS)
    else:
        note(words["no_breaches"])

    section(words["on_duty"])
    if view.on_duty_rows:
        note(words["on_duty_intro"])
        headings = [words[k] for k in ("hours_class", "tickets", "to_page", "to_ack", "to_reply")]
        table(headings, view.on_duty_rows, _ON_DUTY_COLS)
    else:
        note(words["no_on_duty"])

    section(words["credits"])
    for line in view.credit_lines:
        pdf.multi_cell(0, 5.5, "•  " + line, new_x="LMARGIN", new_y="NEXT", wrapmode=wrap)

    section(words["definitions"])
    for label, text in view.definitions:
        pdf.set_font(FONT_FAMILY, size=9.5)
        pdf.cell(0, 5.5, label, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT_FAMILY, size=8.5)
        note(text)
        pdf.ln(1)
    return bytes(pdf.output())


def _title_block(pdf: object, view: ReportView) -> None:
    """Title and the organization / plan / month lines."""
    from fpdf import FPDF

    assert isinstance(pdf, FPDF)
    pdf.set_font(FONT_FAMILY, size=20)
    pdf.cell(0, 11, view.labels["title"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT_FAMILY, size=10)
    for label, value in view.heading:
        pdf.set_text_color(*_MUTED)
        pdf.cell(30, 6, label)
        pdf.set_text_color(*_INK)
        pdf.cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
