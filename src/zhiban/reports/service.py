"""Use cases of reports: parse the filters, enforce tenancy, load the facts and compute every figure.

Each figure comes back as a `Figure`: its definitions (en/zh), a summary, and flat rows with fixed
columns, so the JSON API, the CSV export and the dashboard show the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Organization, Principal
from zhiban.reports import metrics, on_duty
from zhiban.reports.credits import month_bounds
from zhiban.reports.customer import CustomerSlaReport, PlanTarget, customer_sla_report
from zhiban.reports.definitions import definition
from zhiban.reports.metrics import HoursBucket
from zhiban.reports.model import Definition, Percentiles, Ratio
from zhiban.reports.queries import (
    Scope,
    clock_facts,
    deflection_facts,
    incident_facts,
    on_duty_facts,
    page_facts,
    ticket_facts,
)
from zhiban.sla.model import METRIC_ORDER

FIGURES = (
    "first_response",
    "sla_compliance",
    "breaches",
    "resolution",
    "backlog",
    "mtta_mttr",
    "pages_per_person",
    "proactive_ratio",
    "deflection_rate",
    "on_duty",
)
STAFF_ONLY = frozenset({"pages_per_person"})  # names the vendor's on-call people
DEFAULT_DAYS = 30
MAX_DAYS = 366
PRIORITIES = ("P1", "P2", "P3", "P4")
_NAME = re.compile(r"^[A-Za-z0-9 _.:&-]{1,100}$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# Incidents that mean the platform was unavailable to the customer (counted as downtime in the SLA report).
OUTAGE_SEVERITIES = frozenset({"critical", "error"})


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters as the caller gave them, resolved to a scope in UTC."""

    start: datetime
    end: datetime
    plan: str | None = None
    priority: str | None = None
    team: str | None = None
    organization_id: str | None = None

    def scope(self) -> Scope:
        return Scope(self.start, self.end, self.plan, self.priority, self.team, self.organization_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "plan": self.plan,
            "priority": self.priority,
            "team": self.team,
            "organization_id": self.organization_id,
        }


@dataclass(frozen=True, slots=True)
class Figure:
    """One computed figure: what it means, a summary, and rows with fixed columns (the CSV)."""

    name: str
    definitions: tuple[Definition, ...]
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def _moment(text: str, what: str, zone: ZoneInfo, *, end: bool) -> datetime:
    """A date (whole local day) or an ISO datetime; `end` dates mean the end of that day."""
    text = text.strip()
    if len(text) > 40:
        raise InvalidInput(f"{what} is too long")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(0), zone)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a date (2026-11-01) or an ISO datetime, not {text!r}") from exc
    return moment.astimezone(UTC)


def parse_filters(
    clock: Clock,
    *,
    start: str | None = None,
    end: str | None = None,
    plan: str | None = None,
    priority: str | None = None,
    team: str | None = None,
    organization_id: str | None = None,
    tz: str = "UTC",
) -> Filters:
    """Validated filters; by default the last 30 days up to now."""
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}") from exc
    now = clock.now()
    # The default period ends just after now, so what happened at this very instant is counted.
    stop = _moment(end, "to", zone, end=True) if end else now + timedelta(microseconds=1)
    begin = _moment(start, "from", zone, end=False) if start else stop - timedelta(days=DEFAULT_DAYS)
    if begin >= stop:
        raise InvalidInput("from must be before to")
    if stop - begin > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"a report covers at most {MAX_DAYS} days")
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput("priority must be P1, P2, P3 or P4")
    for name, value in (("plan", plan), ("team", team), ("organization_id", organization_id)):
        if value is not None and not _NAME.match(value):
            raise InvalidInput(f"{name} must be 1-100 letters, digits, spaces or _.:&-")
    return Filters(begin, stop, plan or None, priority, team or None, organization_id or None)


def scoped(session: Session, principal: Principal, filters: Filters) -> Filters:
    """The filters a caller may use: a customer always reads its own organization, and only that."""
    if principal.is_staff:
        if filters.organization_id and identity.organization(session, filters.organization_id) is None:
            raise NotFound("no such organization")
        return filters
    own = principal.organization_id
    if own is None:
        raise Forbidden("no organization for this user")
    if filters.organization_id and filters.organization_id != own:
        raise NotFound("no such organization")  # another tenant's existence is not the caller's to learn
    return replace(filters, organization_id=own)


# -- figures --------------------------------------------------------------------------------------------------


def _minutes(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 60, 2)


def _pct(ratio: Ratio) -> float | None:
    return None if ratio.pct is None else round(ratio.pct, 2)


def _pcts(p: Percentiles) -> dict[str, Any]:
    return {"n": p.n, "p50_minutes": _minutes(p.p50), "p90_minutes": _minutes(p.p90)}


def _first_response(session: Session, filters: Filters, now: datetime) -> Figure:
    split = metrics.first_response_split(ticket_facts(session, filters.scope(), as_of=min(now, filters.end)))
    rows: list[dict[str, Any]] = []
    for (plan, priority), buckets in split.by_group.items():
        for bucket in HoursBucket:
            p = buckets[bucket]
            rows.append({"plan": plan, "priority": priority, "bucket": bucket.value, **_pcts(p), "unanswered": None})
    for bucket in HoursBucket:
        rows.append(
            {"plan": "all", "priority": "all", "bucket": bucket.value, **_pcts(split.overall[bucket]),
             "unanswered": split.unanswered[bucket]}
        )  # fmt: skip
    columns = ("plan", "priority", "bucket", "n", "p50_minutes", "p90_minutes", "unanswered")
    summary = {b.value: {**_pcts(split.overall[b]), "unanswered": split.unanswered[b]} for b in HoursBucket}
    return Figure("first_response", (split.definition,), columns, rows, summary)


def _tickets_and_clocks(session: Session, filters: Filters, now: datetime) -> tuple[list[Any], list[Any]]:
    tickets = ticket_facts(session, filters.scope(), as_of=min(now, filters.end))
    return tickets, clock_facts(session, [t.ticket_id for t in tickets])  # type: ignore[misc]


def _sla_compliance(session: Session, filters: Filters, now: datetime) -> Figure:
    _, clocks = _tickets_and_clocks(session, filters, now)
    report = metrics.sla_compliance(clocks)
    order = {m.value: i for i, m in enumerate(METRIC_ORDER)}

    def row(metric: str, plan: str, r: metrics.ComplianceRow) -> dict[str, Any]:
        return {"metric": metric, "plan": plan, "met": r.met, "breached": r.breached, "active": r.active,
                "paused": r.paused, "compliance_pct": _pct(r.compliance)}  # fmt: skip

    keys = sorted(report.rows, key=lambda k: (order.get(k[0], 99), k[1]))
    rows = [row(metric, plan, report.rows[(metric, plan)]) for metric, plan in keys]
    rows.append(row("all", "all", report.total))
    columns = ("metric", "plan", "met", "breached", "active", "paused", "compliance_pct")
    return Figure(
        "sla_compliance", (report.definition,), columns, rows, {"compliance_pct": _pct(report.total.compliance)}
    )


def _breaches(session: Session, filters: Filters, now: datetime) -> Figure:
    _, clocks = _tickets_and_clocks(session, filters, now)
    found = metrics.breaches(clocks)
    rows = [
        {"ticket_id": b.ticket_id, "plan": b.plan, "metric": b.metric, "due_at": b.due_at.isoformat(),
         "fulfilled_at": b.fulfilled_at.isoformat() if b.fulfilled_at else None, "cause": b.cause.value,
         "late_by_minutes": _minutes(b.late_by), "description_en": b.describe("en"), "description_zh": b.describe("zh")}
        for b in found
    ]  # fmt: skip
    columns = ("ticket_id", "plan", "metric", "due_at", "fulfilled_at", "cause", "late_by_minutes",
               "description_en", "description_zh")  # fmt: skip
    return Figure("breaches", (definition("sla_breaches"),), columns, rows, {"count": len(rows)})


def _resolution(session: Session, filters: Filters, now: datetime) -> Figure:
    stats = metrics.resolution_stats(ticket_facts(session, filters.scope(), as_of=min(now, filters.end)))
    measures = (("resolution_rate", stats.resolution_rate), ("one_touch_resolution", stats.one_touch),
                ("reopen_rate", stats.reopen))  # fmt: skip
    rows = [{"measure": name, "part": r.part, "whole": r.whole, "pct": _pct(r)} for name, r in measures]
    return Figure(
        "resolution", stats.definitions, ("measure", "part", "whole", "pct"), rows, {"tickets": stats.tickets}
    )


def _backlog(session: Session, filters: Filters, now: datetime) -> Figure:
    as_of = min(now, filters.end)
    # The backlog is a snapshot at the end of the period: every ticket filed before it counts, however old.
    tickets = ticket_facts(session, filters.scope(), as_of=as_of, created_from=datetime(1970, 1, 1, tzinfo=UTC))
    report = metrics.backlog(tickets, as_of)
    rows = [{"dimension": "total", "key": "all", "count": report.count}]
    rows += [{"dimension": "priority", "key": k, "count": v} for k, v in report.by_priority.items()]
    rows += [{"dimension": "age_band", "key": k, "count": v} for k, v in report.by_age_band.items()]
    summary = {"as_of": as_of.isoformat(), "count": report.count, "age_p50_hours": _hours(report.age.p50),
               "age_p90_hours": _hours(report.age.p90), "oldest_hours": _hours(report.oldest)}  # fmt: skip
    return Figure("backlog", (report.definition,), ("dimension", "key", "count"), rows, summary)


def _hours(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 3600, 2)


def _mtta_mttr(session: Session, filters: Filters, now: datetime) -> Figure:
    report = metrics.mtta_mttr(incident_facts(session, filters.scope()))

    def row(scope: str, name: str, t: metrics.IncidentTimes) -> dict[str, Any]:
        return {"scope": scope, "name": name, "incidents": t.incidents, "acknowledged": t.acknowledged,
                "resolved": t.resolved, "mtta_minutes": _minutes(t.mtta), "mttr_minutes": _minutes(t.mttr)}  # fmt: skip

    rows = [row("service", k, v) for k, v in report.by_service.items()]
    rows += [row("team", k, v) for k, v in report.by_team.items()]
    rows.append(row("overall", "all", report.overall))
    columns = ("scope", "name", "incidents", "acknowledged", "resolved", "mtta_minutes", "mttr_minutes")
    summary = {"mtta_minutes": _minutes(report.overall.mtta), "mttr_minutes": _minutes(report.overall.mttr)}
    return Figure("mtta_mttr", report.definitions, columns, rows, summary)


def _pages_per_person(session: Session, filters: Filters, now: datetime) -> Figure:
    pages, names = page_facts(session, filters.scope())
    report = metrics.pages_per_person(pages)
    rows = [
        {"person_id": pid, "name": names.get(pid, pid), "total": load.total, "out_of_hours": load.out_of_hours,
         "sleep_hours": load.sleep_hours, "by_channel": ";".join(f"{k}:{v}" for k, v in load.by_channel.items())}
        for pid, load in report.people.items()
    ]  # fmt: skip
    columns = ("person_id", "name", "total", "out_of_hours", "sleep_hours", "by_channel")
    return Figure("pages_per_person", (report.definition,), columns, rows, {"pages": len(pages)})


def _proactive_ratio(session: Session, filters: Filters, now: datetime) -> Figure:
    report = metrics.proactive_ratio(incident_facts(session, filters.scope()))
    row = {"incidents": report.ratio.whole, "proactive": report.ratio.part, "pct": _pct(report.ratio),
           "with_ticket": report.with_ticket, "lead_p50_minutes": _minutes(report.lead_time.p50),
           "lead_p90_minutes": _minutes(report.lead_time.p90)}  # fmt: skip
    return Figure("proactive_ratio", (report.definition,), tuple(row), [row], dict(row))


def _deflection_rate(session: Session, filters: Filters, now: datetime) -> Figure:
    report = metrics.deflection_rate(deflection_facts(session, filters.scope()))
    row = {"drafts": report.ratio.whole, "deflected": report.ratio.part, "pct": _pct(report.ratio)}
    return Figure("deflection_rate", (report.definition,), tuple(row), [row], dict(row))


ON_DUTY_COLUMNS = (
    "mode", "hours", "tickets", "paged", "page_p50_minutes", "page_p90_minutes", "acknowledged", "ack_p50_minutes",
    "ack_p90_minutes", "answered", "reply_p50_minutes", "reply_p90_minutes",
)  # fmt: skip


def on_duty_row(group: on_duty.OnDutyGroup) -> dict[str, Any]:
    """One mode × hours class as a flat row (minutes)."""
    page, ack, reply = (group.steps[s] for s in on_duty.STEPS)
    return {
        "mode": group.mode, "hours": group.hours, "tickets": group.tickets,
        "paged": page.n, "page_p50_minutes": _minutes(page.p50), "page_p90_minutes": _minutes(page.p90),
        "acknowledged": ack.n, "ack_p50_minutes": _minutes(ack.p50), "ack_p90_minutes": _minutes(ack.p90),
        "answered": reply.n, "reply_p50_minutes": _minutes(reply.p50), "reply_p90_minutes": _minutes(reply.p90),
    }  # fmt: skip


def _on_duty(session: Session, filters: Filters, now: datetime) -> Figure:
    times = on_duty.on_duty_times(on_duty_facts(session, filters.scope(), as_of=min(now, filters.end)))
    rows = [on_duty_row(g) for g in times.groups]
    summary = {f"{r['mode']}.{r['hours']}": r for r in rows if r["hours"] == on_duty.ALL}
    return Figure("on_duty", (times.definition,), ON_DUTY_COLUMNS, rows, summary)


_COMPUTE: dict[str, Callable[[Session, Filters, datetime], Figure]] = {
    "first_response": _first_response,
    "sla_compliance": _sla_compliance,
    "breaches": _breaches,
    "resolution": _resolution,
    "backlog": _backlog,
    "mtta_mttr": _mtta_mttr,
    "pages_per_person": _pages_per_person,
    "proactive_ratio": _proactive_ratio,
    "deflection_rate": _deflection_rate,
    "on_duty": _on_duty,
}


def figure(session: Session, clock: Clock, principal: Principal, name: str, filters: Filters) -> Figure:
    """One figure for the caller (a customer: its own organization only; some figures are staff-only)."""
    compute = _COMPUTE.get(name)
    if compute is None:
        raise NotFound(f"no figure {name!r}; figures: {', '.join(FIGURES)}")
    if name in STAFF_ONLY:
        principal.require_staff()
    return compute(session, scoped(session, principal, filters), clock.now())


def all_figures(session: Session, clock: Clock, principal: Principal, filters: Filters) -> dict[str, Figure]:
    """Every figure the caller may read, for the dashboard."""
    names = [n for n in FIGURES if principal.is_staff or n not in STAFF_ONLY]
    return {name: figure(session, clock, principal, name, filters) for name in names}


def daily_volume(session: Session, principal: Principal, filters: Filters, tz: str) -> dict[str, list[Any]]:
    """Tickets filed and solved per local day of the period (the dashboard's time series)."""
    filters = scoped(session, principal, filters)
    zone = ZoneInfo(tz)
    tickets = ticket_facts(session, filters.scope(), as_of=filters.end)
    first = filters.start.astimezone(zone).date()
    last = (filters.end - timedelta(microseconds=1)).astimezone(zone).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    filed = dict.fromkeys(days, 0)
    solved = dict.fromkeys(days, 0)
    for t in tickets:
        filed[t.created_at.astimezone(zone).date()] = filed.get(t.created_at.astimezone(zone).date(), 0) + 1
        if t.solved_at is not None and t.solved_at < filters.end:
            day = t.solved_at.astimezone(zone).date()
            if day in solved:
                solved[day] += 1
    stamps = [int(datetime.combine(d, time(0), zone).timestamp()) for d in days]
    return {"t": stamps, "filed": [filed[d] for d in days], "solved": [solved[d] for d in days]}


# -- the customer SLA report -------------------------------------------------------------------------------------


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) of "2026-11"."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InvalidInput(f"a month is YYYY-MM, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def find_organization(session: Session, principal: Principal, ref: str) -> Organization:
    """An organization by id or slug that the caller may see (NotFound otherwise, never Forbidden)."""
    if len(ref) > 64:
        raise NotFound("no such organization")
    org = identity.organization(session, ref) or identity.organization_with_slug(session, ref)
    if org is None or not principal.can_see_organization(org.id):
        raise NotFound("no such organization")
    return org


def _plan_targets(session: Session, plan_key: str) -> tuple[str, tuple[PlanTarget, ...]]:
    """The plan's display name and targets as stored by the SLA feature (priority, then metric order)."""
    from zhiban.sla import service as sla

    try:
        row = sla.get_plan(session, plan_key)
    except (NotFound, InvalidInput):
        return plan_key, ()
    order = {m.value: i for i, m in enumerate(METRIC_ORDER)}
    targets = [
        PlanTarget(
            priority, str(t["metric"]), timedelta(minutes=float(t["minutes"])), str(t.get("calendar", "business"))
        )
        for priority, items in row.targets.items()
        for t in items
    ]
    targets.sort(key=lambda t: (t.priority, order.get(t.metric, 99)))
    return row.name, tuple(targets)


def customer_report(
    session: Session, clock: Clock, principal: Principal, org_ref: str, month: str
) -> CustomerSlaReport:
    """The SLA report of one organization and month, for staff and that organization's users."""
    org = find_organization(session, principal, org_ref)
    year, number = parse_month(month)
    start, end = month_bounds(year, number, org.timezone)
    now = clock.now()
    if start > now:
        raise InvalidInput("that month has not begun")
    scope = Scope(start, end, organization_id=org.id)
    tickets = ticket_facts(session, scope, as_of=now)
    clocks = clock_facts(session, [int(t.ticket_id) for t in tickets])
    # Incidents that started before the month and ran into it count too.
    incidents = [
        i
        for i in incident_facts(session, replace(scope, start=start - timedelta(days=31)))
        if i.severity in OUTAGE_SEVERITIES
    ]
    plan_name, targets = _plan_targets(session, org.plan)
    return customer_sla_report(
        organization_id=org.id,
        organization_name=org.name,
        plan=plan_name,
        year=year,
        month=number,
        targets=targets,
        tickets=tickets,
        clocks=clocks,
        incidents=incidents,
        now=now,
        tz=org.timezone,
        on_duty=on_duty_facts(session, scope, as_of=now),
    )
