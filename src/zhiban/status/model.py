"""Status page domain: incidents with public updates, current incidents, 90-day history and uptime bars. Pure.

Impact levels follow common status pages: none < minor (degraded performance) < major (partial outage)
< critical (major outage); "maintenance" is planned work. Uptime counts an outage minute with the weight
of the worst incident open in that minute (DOWNTIME_WEIGHTS: critical 1, major 0.3, others 0 — the demo's
choice, data so a desk can change it). Days are local days in the viewer's zone (23 or 25 hours across a
DST change); today counts only up to `now`, so a fine morning is not diluted by hours still to come.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zhiban.core.errors import InvalidInput

SEVERITIES = ("none", "maintenance", "minor", "major", "critical")  # worst last
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
UPDATE_STATUSES = ("investigating", "identified", "monitoring", "resolved", "scheduled", "in_progress", "completed")
DOWNTIME_WEIGHTS: Mapping[str, float] = {"critical": 1.0, "major": 0.3, "minor": 0.0, "maintenance": 0.0, "none": 0.0}

MAX_DAYS = 366
MAX_INCIDENTS = 100_000
MAX_UPDATES = 500
MAX_TITLE = 300
MAX_BODY = 10_000


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InvalidInput(f"{name} must be a timezone-aware datetime")


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}") from exc


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One public update on an incident ("investigating", "identified", "monitoring", "resolved", ...)."""

    at: datetime
    status: str
    body: str

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if self.status not in UPDATE_STATUSES:
            raise InvalidInput(f"update status must be one of {', '.join(UPDATE_STATUSES)}, not {self.status!r}")
        if len(self.body) > MAX_BODY:
            raise InvalidInput(f"an update is at most {MAX_BODY} characters")


@dataclass(frozen=True, slots=True)
class StatusIncident:
    """An incident as the status page shows it; no organization ids means it is shown to everyone."""

    incident_id: int | str
    title: str
    severity: str
    components: tuple[str, ...]
    started_at: datetime
    resolved_at: datetime | None
    updates: tuple[StatusUpdate, ...] = ()
    organization_ids: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.title.strip() or len(self.title) > MAX_TITLE:
            raise InvalidInput(f"incident title must be 1-{MAX_TITLE} characters")
        if self.severity not in SEVERITY_RANK:
            raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")
        _aware("started_at", self.started_at)
        _aware("resolved_at", self.resolved_at)
        if self.resolved_at is not None and self.resolved_at < self.started_at:
            raise InvalidInput("an incident cannot be resolved before it started")
        if len(self.updates) > MAX_UPDATES:
            raise InvalidInput(f"at most {MAX_UPDATES} updates per incident")

    def is_open_at(self, moment: datetime) -> bool:
        """Started by `moment` and not yet resolved then."""
        return self.started_at <= moment and (self.resolved_at is None or self.resolved_at > moment)

    def updates_newest_first(self) -> tuple[StatusUpdate, ...]:
        """Updates as a status page lists them: newest on top (ties keep their given order)."""
        return tuple(sorted(self.updates, key=lambda u: u.at, reverse=True))

    def last_changed(self) -> datetime:
        """The latest of start, resolve and update times (an Atom entry's `updated`)."""
        times = [self.started_at, *(u.at for u in self.updates)]
        if self.resolved_at is not None:
            times.append(self.resolved_at)
        return max(times)


def _bounded(incidents: Iterable[StatusIncident]) -> list[StatusIncident]:
    out: list[StatusIncident] = []
    for incident in incidents:
        if len(out) >= MAX_INCIDENTS:
            raise InvalidInput(f"at most {MAX_INCIDENTS} incidents on a status page")
        out.append(incident)
    return out


def incidents_affecting(
    incidents: Iterable[StatusIncident], component: str | None = None, organization_id: str | None = None
) -> list[StatusIncident]:
    """Incidents on `component` (None = any) visible to `organization_id` (None = public page only)."""
    return [
        i
        for i in _bounded(incidents)
        if (component is None or component in i.components)
        and (not i.organization_ids or (organization_id is not None and organization_id in i.organization_ids))
    ]


def current_incidents(incidents: Iterable[StatusIncident], now: datetime) -> list[StatusIncident]:
    """Incidents open at `now`: worst severity first, then most recently started."""
    _aware("now", now)
    open_now = [i for i in _bounded(incidents) if i.is_open_at(now)]
    return sorted(open_now, key=lambda i: (-SEVERITY_RANK[i.severity], -i.started_at.timestamp(), str(i.incident_id)))


@dataclass(frozen=True, slots=True)
class HistoryDay:
    day: date
    incidents: tuple[StatusIncident, ...]  # started that local day, newest first


def history(incidents: Iterable[StatusIncident], now: datetime, tz: str, days: int = 90) -> list[HistoryDay]:
    """Every local day of the last `days` (today first), with the incidents that started on it."""
    _aware("now", now)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1..{MAX_DAYS}")
    zone = _zone(tz)
    today = now.astimezone(zone).date()
    by_day: dict[date, list[StatusIncident]] = {}
    for incident in _bounded(incidents):
        if incident.started_at > now:
            continue
        by_day.setdefault(incident.started_at.astimezone(zone).date(), []).append(incident)
    out = []
    for back in range(days):
        day = today - timedelta(days=back)
        found = sorted(by_day.get(day, ()), key=lambda i: i.started_at, reverse=True)
        out.append(HistoryDay(day, tuple(found)))
    return out


# -- uptime -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayBar:
    """One bar of the uptime chart: a local day, its uptime, the worst incident severity and the incidents."""

    day: date
    uptime_pct: float | None  # None for a day with no measured time (not reached yet)
    worst_severity: str  # "none" when nothing happened
    incident_ids: tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class UptimeChart:
    bars: list[DayBar]  # oldest first, as drawn left to right
    uptime_pct: float | None  # over the whole period, time-weighted


def _weighted_downtime(spans: Sequence[tuple[datetime, datetime, float]], start: datetime, end: datetime) -> timedelta:
    """Time in [start, end) weighted by the largest weight of the spans covering it."""
    cuts = {start, end}
    for a, b, _ in spans:
        cuts.update(t for t in (a, b) if start < t < end)
    points = sorted(cuts)
    total = timedelta(0)
    for lo, hi in itertools.pairwise(points):
        weight = max((w for a, b, w in spans if a <= lo and b >= hi), default=0.0)
        total += (hi - lo) * weight
    return total


def daily_uptime(
    incidents: Iterable[StatusIncident],
    *,
    now: datetime,
    tz: str,
    days: int = 90,
    weights: Mapping[str, float] = DOWNTIME_WEIGHTS,
) -> UptimeChart:
    """Uptime bars for the last `days` local days in zone `tz` (today = the day of `now`), oldest first.

    Pass the incidents of one component (see incidents_affecting). An open incident lasts until `now`.
    """
    _aware("now", now)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1..{MAX_DAYS}")
    zone = _zone(tz)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    window_start = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
    items = [i for i in _bounded(incidents) if i.started_at < now and (i.resolved_at or now) > window_start]
    bars: list[DayBar] = []
    measured, down_total = timedelta(0), timedelta(0)
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        start = datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
        end = min(end, now)
        touching = [i for i in items if i.started_at < end and (i.resolved_at or now) > start]
        spans = [(i.started_at, i.resolved_at or now, weights.get(i.severity, 0.0)) for i in touching]
        length = end - start
        down = _weighted_downtime(spans, start, end) if length > timedelta(0) else timedelta(0)
        pct = 100.0 * (1 - down / length) if length > timedelta(0) else None
        worst = max((i.severity for i in touching), key=SEVERITY_RANK.__getitem__, default="none")
        ids = tuple(i.incident_id for i in sorted(touching, key=lambda i: i.started_at))
        bars.append(DayBar(day, pct, worst, ids))
        if length > timedelta(0):
            measured += length
            down_total += down
    overall = 100.0 * (1 - down_total / measured) if measured > timedelta(0) else None
    return UptimeChart(bars, overall)
