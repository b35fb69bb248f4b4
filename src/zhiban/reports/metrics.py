"""Support figures over plain facts: first response by hours bucket, SLA compliance, resolution, backlog,
MTTA/MTTR, pages per person, proactive ratio, deflection. Pure: the caller picks the period's facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zhiban.calendars.model import BusinessCalendar
from zhiban.core.errors import InvalidInput
from zhiban.reports.definitions import definition
from zhiban.reports.model import (
    ClockFact,
    Definition,
    DeflectionFact,
    IncidentFact,
    PageFact,
    Percentiles,
    Ratio,
    RecordId,
    TicketFact,
    bounded,
    mean_duration,
    percentiles,
)
from zhiban.sla.model import ClockState

# -- first response by hours bucket --------------------------------------------------------------------------


class HoursBucket(StrEnum):
    BUSINESS_HOURS = "business_hours"
    OUT_OF_HOURS = "out_of_hours"
    HOLIDAY = "holiday"


CalendarFor = Callable[[TicketFact], BusinessCalendar]


def customer_calendar(ticket: TicketFact) -> BusinessCalendar:
    """The plans' business calendar (Mon-Fri 09:00-18:00) on the customer's country calendar and zone."""
    from zhiban.sla.plans import business_calendar  # the SLA feature owns which hours the plans use

    return business_calendar(ticket.customer_country, ticket.customer_tz)


def hours_bucket(moment: datetime, calendar: BusinessCalendar) -> HoursBucket:
    """Where `moment` falls on a calendar: open, a holiday (closed official date), or otherwise closed."""
    if calendar.is_open(moment):
        return HoursBucket.BUSINESS_HOURS
    if moment.astimezone(calendar.zone).date() in calendar.holidays:
        return HoursBucket.HOLIDAY
    return HoursBucket.OUT_OF_HOURS


@dataclass(frozen=True, slots=True)
class FirstResponseSplit:
    """First response percentiles per (plan, priority) and bucket, and over all plans; unanswered counts."""

    by_group: dict[tuple[str, str], dict[HoursBucket, Percentiles]]
    overall: dict[HoursBucket, Percentiles]
    unanswered: dict[HoursBucket, int]
    definition: Definition = field(default_factory=lambda: definition("first_response_time"))


def first_response_split(
    tickets: Iterable[TicketFact], calendar_for: CalendarFor = customer_calendar
) -> FirstResponseSplit:
    """First response time p50/p90 split into business hours / out of hours / holiday, by plan × priority."""
    groups: dict[tuple[str, str], dict[HoursBucket, list[timedelta]]] = defaultdict(lambda: defaultdict(list))
    overall: dict[HoursBucket, list[timedelta]] = {b: [] for b in HoursBucket}
    unanswered = dict.fromkeys(HoursBucket, 0)
    for ticket in bounded(tickets, "tickets"):
        bucket = hours_bucket(ticket.created_at, calendar_for(ticket))
        if ticket.first_public_reply_at is None:
            unanswered[bucket] += 1
            continue
        waited = ticket.first_public_reply_at - ticket.created_at
        groups[(ticket.plan, ticket.priority)][bucket].append(waited)
        overall[bucket].append(waited)
    return FirstResponseSplit(
        by_group={key: {b: percentiles(per.get(b, ())) for b in HoursBucket} for key, per in sorted(groups.items())},
        overall={b: percentiles(values) for b, values in overall.items()},
        unanswered=unanswered,
    )


# -- SLA compliance and breaches -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    """Clock cycles of one metric × plan by outcome; compliance = met / (met + breached)."""

    met: int
    breached: int
    active: int
    paused: int
    compliance: Ratio


@dataclass(frozen=True, slots=True)
class SlaCompliance:
    rows: dict[tuple[str, str], ComplianceRow]  # (metric, plan)
    total: ComplianceRow
    definition: Definition = field(default_factory=lambda: definition("sla_compliance"))


def _row(counts: dict[str, int]) -> ComplianceRow:
    met, breached = counts[ClockState.FULFILLED], counts[ClockState.BREACHED]
    return ComplianceRow(
        met, breached, counts[ClockState.ACTIVE], counts[ClockState.PAUSED], Ratio(met, met + breached)
    )


def sla_compliance(clocks: Iterable[ClockFact]) -> SlaCompliance:
    """Met, breached, active, paused and compliance % per metric × plan (and in total)."""
    per: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(ClockState, 0))
    total: dict[str, int] = dict.fromkeys(ClockState, 0)
    for clock in bounded(clocks, "clocks"):
        per[(clock.metric, clock.plan)][clock.state] += 1
        total[clock.state] += 1
    return SlaCompliance({key: _row(counts) for key, counts in sorted(per.items())}, _row(total))


class BreachCause(StrEnum):
    LATE = "late"  # fulfilled, but after the due time
    UNFULFILLED = "unfulfilled"  # still not fulfilled at report time


# What fulfils each metric, to word the cause ("first response" → "no first response").
_FULFILMENT: dict[str, tuple[str, str]] = {
    "first_response": ("first public agent reply", "首次公开回复"),
    "next_response": ("reply to the customer's message", "对客户消息的回复"),
    "periodic_update": ("periodic update", "定期进展更新"),
    "resolution": ("solution", "解决"),
}


@dataclass(frozen=True, slots=True)
class Breach:
    """One breached cycle and why: late (by how much) or not fulfilled yet."""

    ticket_id: RecordId
    plan: str
    metric: str
    due_at: datetime
    fulfilled_at: datetime | None
    cause: BreachCause
    late_by: timedelta | None

    def describe(self, lang: str = "en") -> str:
        """The cause in words, e.g. "first public agent reply 12 min late"."""
        en, zh = _FULFILMENT.get(self.metric, (self.metric, self.metric))
        if self.cause is BreachCause.LATE and self.late_by is not None:
            minutes = max(1, round(self.late_by.total_seconds() / 60))
            return f"{zh}迟了 {minutes} 分钟" if lang == "zh" else f"{en} {minutes} min late"
        return (
            f"到期前无{zh}，截至报告时仍未完成" if lang == "zh" else f"no {en} before due; still missing at report time"
        )


def breaches(clocks: Iterable[ClockFact]) -> list[Breach]:
    """Breached cycles with their cause, earliest due first.

    Derived from the stored clock alone: `breached_at` is the due time that passed; a cycle with
    `fulfilled_at` was fulfilled late by (fulfilled_at − breached_at), one without is still missing.
    """
    found: list[Breach] = []
    for clock in bounded(clocks, "clocks"):
        if clock.state != ClockState.BREACHED or clock.breached_at is None:
            continue
        due, done = clock.breached_at, clock.fulfilled_at
        if done is not None:
            found.append(Breach(clock.ticket_id, clock.plan, clock.metric, due, done, BreachCause.LATE, done - due))
        else:
            found.append(Breach(clock.ticket_id, clock.plan, clock.metric, due, None, BreachCause.UNFULFILLED, None))
    found.sort(key=lambda b: (b.due_at, str(b.ticket_id), b.metric))
    return found


# -- resolution and backlog ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolutionStats:
    tickets: int
    resolution_rate: Ratio  # solved / tickets
    one_touch: Ratio  # one-touch solved / solved
    reopen: Ratio  # reopened solved / solved
    definitions: tuple[Definition, ...] = field(
        default_factory=lambda: tuple(definition(k) for k in ("resolution_rate", "one_touch_resolution", "reopen_rate"))
    )


def resolution_stats(tickets: Iterable[TicketFact]) -> ResolutionStats:
    """Resolution rate, one-touch resolution rate and reopen rate of the period's tickets."""
    items = bounded(tickets, "tickets")
    solved = [t for t in items if t.is_solved]
    one_touch = sum(1 for t in solved if t.public_agent_replies_before_solve == 1 and t.reopened_count == 0)
    reopened = sum(1 for t in solved if t.reopened_count > 0)
    return ResolutionStats(
        tickets=len(items),
        resolution_rate=Ratio(len(solved), len(items)),
        one_touch=Ratio(one_touch, len(solved)),
        reopen=Ratio(reopened, len(solved)),
    )


# Age bands for the backlog chart: (label, upper bound exclusive); the last band is open-ended.
BACKLOG_BANDS: tuple[tuple[str, timedelta | None], ...] = (
    ("<1d", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    (">=7d", None),
)


@dataclass(frozen=True, slots=True)
class Backlog:
    count: int
    age: Percentiles
    oldest: timedelta | None
    by_priority: dict[str, int]
    by_age_band: dict[str, int]
    definition: Definition = field(default_factory=lambda: definition("backlog"))


def backlog(tickets: Iterable[TicketFact], now: datetime) -> Backlog:
    """Unsolved tickets created up to `now`: count, age percentiles, oldest, per priority and age band."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    ages: list[timedelta] = []
    by_priority: dict[str, int] = defaultdict(int)
    bands = {label: 0 for label, _ in BACKLOG_BANDS}
    for ticket in bounded(tickets, "tickets"):
        if ticket.status in ("solved", "closed") or ticket.created_at > now:
            continue
        age = now - ticket.created_at
        ages.append(age)
        by_priority[ticket.priority] += 1
        band = next(label for label, upper in BACKLOG_BANDS if upper is None or age < upper)
        bands[band] += 1
    return Backlog(len(ages), percentiles(ages), max(ages, default=None), dict(sorted(by_priority.items())), bands)


# -- incidents -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentTimes:
    """MTTA over acknowledged incidents and MTTR over resolved ones, of `incidents` incidents."""

    incidents: int
    acknowledged: int
    resolved: int
    mtta: timedelta | None
    mttr: timedelta | None


@dataclass(frozen=True, slots=True)
class MttaMttr:
    by_service: dict[str, IncidentTimes]
    by_team: dict[str, IncidentTimes]
    overall: IncidentTimes
    definitions: tuple[Definition, ...] = field(default_factory=lambda: (definition("mtta"), definition("mttr")))


def _times(incidents: list[IncidentFact]) -> IncidentTimes:
    acks = [i.acknowledged_at - i.triggered_at for i in incidents if i.acknowledged_at is not None]
    fixes = [i.resolved_at - i.triggered_at for i in incidents if i.resolved_at is not None]
    return IncidentTimes(len(incidents), len(acks), len(fixes), mean_duration(acks), mean_duration(fixes))


def mtta_mttr(incidents: Iterable[IncidentFact]) -> MttaMttr:
    """Mean time to acknowledge and to resolve, per service, per team and overall."""
    items = bounded(incidents, "incidents")
    by_service: dict[str, list[IncidentFact]] = defaultdict(list)
    by_team: dict[str, list[IncidentFact]] = defaultdict(list)
    for incident in items:
        by_service[incident.service].append(incident)
        by_team[incident.team].append(incident)
    return MttaMttr(
        by_service={k: _times(v) for k, v in sorted(by_service.items())},
        by_team={k: _times(v) for k, v in sorted(by_team.items())},
        overall=_times(items),
    )


# -- on-call load --------------------------------------------------------------------------------------------

WORK_START, WORK_END = time(9), time(18)  # Mon-Fri, in the person's own zone
SLEEP_START, SLEEP_END = time(22), time(8)


@dataclass(frozen=True, slots=True)
class PageLoad:
    total: int
    out_of_hours: int
    sleep_hours: int
    by_channel: dict[str, int]


@dataclass(frozen=True, slots=True)
class PagesPerPerson:
    people: dict[str, PageLoad]  # person id (as text) → load
    definition: Definition = field(default_factory=lambda: definition("pages_per_person"))


def _zone(name: str, cache: dict[str, ZoneInfo]) -> ZoneInfo:
    zone = cache.get(name)
    if zone is None:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"unknown time zone {name!r}") from exc
        cache[name] = zone
    return zone


def is_out_of_hours(local: datetime) -> bool:
    """Outside Mon-Fri 09:00-18:00 (local wall clock)."""
    return local.weekday() >= 5 or not WORK_START <= local.time() < WORK_END


def is_sleep_hours(local: datetime) -> bool:
    """Between 22:00 and 08:00 (local wall clock)."""
    return local.time() >= SLEEP_START or local.time() < SLEEP_END


def pages_per_person(pages: Iterable[PageFact]) -> PagesPerPerson:
    """Pages per person: total, out of hours and in sleep hours, each judged in the person's own zone."""
    zones: dict[str, ZoneInfo] = {}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    channels: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for page in bounded(pages, "pages"):
        local = page.sent_at.astimezone(_zone(page.person_tz, zones))
        row = counts[str(page.person_id)]
        row[0] += 1
        row[1] += is_out_of_hours(local)
        row[2] += is_sleep_hours(local)
        channels[str(page.person_id)][page.channel] += 1
    return PagesPerPerson(
        {p: PageLoad(c[0], c[1], c[2], dict(sorted(channels[p].items()))) for p, c in sorted(counts.items())}
    )


# -- proactive ratio and deflection --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProactiveRatio:
    ratio: Ratio  # proactive / all incidents
    with_ticket: int  # incidents that had at least one related ticket
    lead_time: Percentiles  # first related ticket − trigger, over proactive incidents with a ticket
    definition: Definition = field(default_factory=lambda: definition("proactive_ratio"))


def is_proactive(incident: IncidentFact) -> bool:
    """Detected by the desk (not from a ticket) strictly before the first related ticket, or with none."""
    if incident.detected_by == "ticket":
        return False
    first_ticket = incident.first_related_ticket_at
    return first_ticket is None or incident.triggered_at < first_ticket


def proactive_ratio(incidents: Iterable[IncidentFact]) -> ProactiveRatio:
    """Share of incidents found before any customer told us, and the lead time over the first ticket."""
    items = bounded(incidents, "incidents")
    proactive = [i for i in items if is_proactive(i)]
    leads = [i.first_related_ticket_at - i.triggered_at for i in proactive if i.first_related_ticket_at is not None]
    with_ticket = sum(1 for i in items if i.first_related_ticket_at is not None)
    return ProactiveRatio(Ratio(len(proactive), len(items)), with_ticket, percentiles(leads))


@dataclass(frozen=True, slots=True)
class DeflectionRate:
    ratio: Ratio
    definition: Definition = field(default_factory=lambda: definition("deflection_rate"))


def deflection_rate(facts: Iterable[DeflectionFact]) -> DeflectionRate:
    """Deflected drafts / drafts, summed over the facts (e.g. one per day or per organization)."""
    items = bounded(facts, "deflection facts")
    return DeflectionRate(Ratio(sum(f.deflected for f in items), sum(f.drafts for f in items)))
