"""The customer SLA report as display text (one context for HTML and PDF alike) and its HTML rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import jinja2

from zhiban.reports.credits import CreditReason
from zhiban.reports.customer import CustomerSlaReport
from zhiban.reports.definitions import definition
from zhiban.reports.model import HOURS_CLASSES, Percentiles
from zhiban.reports.on_duty import ALL, STEPS, OnDutyTimes
from zhiban.reports.texts import format_duration, format_pct, format_time, labels

TEMPLATE = "reports/customer_sla.html"
# (label, definition key) of the figures the report shows
DEFINITION_KEYS = (
    ("sla_compliance", "sla_compliance"),
    ("availability", "availability"),
    ("breaches", "sla_breaches"),
    ("credits", "service_credit"),
    ("on_duty", "on_duty_times"),
)


@dataclass(frozen=True, slots=True)
class ReportView:
    """Every string the report shows, already formatted for one language."""

    lang: str
    labels: dict[str, str]
    heading: list[tuple[str, str]]
    target_rows: list[list[str]]
    summary: list[tuple[str, str]]
    incident_rows: list[list[str]]
    breach_rows: list[list[str]]
    credit_lines: list[str]
    definitions: list[tuple[str, str]]
    on_duty_rows: list[list[str]] = field(default_factory=list)  # empty: no ticket in a paging mode


def _reason(reason: CreditReason, lang: str) -> str:
    words = labels(lang)
    return words["reason"].format(
        measure=words[reason.measure],
        value=format_pct(reason.value_pct, lang),
        threshold=format_pct(reason.below_pct, lang),
        credit=format_pct(reason.credit_pct, lang),
    )


def _on_duty_rows(times: OnDutyTimes | None, lang: str) -> list[list[str]]:
    """One row per hours class the organization filed in (all its paging-mode tickets), then all hours."""
    if times is None:
        return []
    words = labels(lang)

    def cell(p: Percentiles) -> str:
        return f"{format_duration(p.p50, lang)} / {format_duration(p.p90, lang)} ({p.n})"

    rows = []
    for hours in (*HOURS_CLASSES, ALL):
        group = times.group(ALL, hours)
        if group.tickets:
            name = words["all_hours"] if hours == ALL else words[hours]
            rows.append([name, str(group.tickets), *(cell(group.steps[step]) for step in STEPS)])
    return rows


def report_view(report: CustomerSlaReport, lang: str = "en") -> ReportView:
    """Format a report for people in `lang` (times on the report's zone)."""
    words, tz = labels(lang), report.tz
    heading = [
        (words["organization"], report.organization_name),
        (words["plan"], report.plan),
        (words["month"], f"{report.year}-{report.month:02d}"),
        (words["times_in"], tz),
        (words["generated"], format_time(report.generated_at, tz)),
    ]
    target_rows = [
        [
            row.target.priority,
            words.get(row.target.metric, row.target.metric),
            f"{format_duration(row.target.target, lang)} ({words.get(row.target.calendar, row.target.calendar)})",
            str(row.met),
            str(row.breached),
            str(row.open),
            format_pct(row.compliance.pct, lang),
        ]
        for row in report.rows
    ]
    availability = report.availability
    summary = [
        (words["overall_compliance"], format_pct(report.compliance.pct, lang)),
        (words["availability"], format_pct(availability.pct, lang)),
        (words["downtime"], format_duration(availability.downtime, lang)),
    ]
    incident_rows = [
        [
            str(i.incident_id),
            i.title,
            i.service,
            i.severity,
            format_time(i.started_at, tz),
            format_time(i.resolved_at, tz) if i.resolved_at else words["ongoing"],
            format_duration(i.duration_in_month, lang),
        ]
        for i in report.incidents
    ]
    breach_rows = [
        [str(b.ticket_id), words.get(b.metric, b.metric), format_time(b.due_at, tz), b.describe(lang)]
        for b in report.breaches
    ]
    credit = report.credit
    credit_lines = [_reason(r, lang) for r in credit.reasons]
    if credit.credit_pct > 0:
        credit_lines.append(f"{words['credit_pct']}: {format_pct(credit.credit_pct, lang)}")
        if report.monthly_fee is not None and credit.amount is not None:
            credit_lines.append(f"{words['monthly_fee']}: {report.monthly_fee:,.2f} {report.currency}")
            credit_lines.append(f"{words['credit_amount']}: {credit.amount:,.2f} {report.currency}")
    else:
        credit_lines.append(words["no_credit"])
    definitions = [(words[label], definition(key).text(lang)) for label, key in DEFINITION_KEYS]
    return ReportView(
        lang, words, heading, target_rows, summary, incident_rows, breach_rows, credit_lines, definitions,
        _on_duty_rows(report.on_duty, lang),
    )  # fmt: skip


@cache
def _environment() -> jinja2.Environment:
    folder = str(resources.files("zhiban.web").joinpath("templates"))
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True, undefined=jinja2.StrictUndefined)


def render_html(report: CustomerSlaReport, lang: str = "en") -> str:
    """The report as a standalone HTML document (printable; no scripts, no external assets)."""
    return _environment().get_template(TEMPLATE).render(view=report_view(report, lang))
