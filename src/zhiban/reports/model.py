"""Report inputs (plain facts the services fill from the tables) and the shared result types. Pure: no I/O.

Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the value at
1-based rank ceil(p/100 · n). It is always one of the observed values (no interpolation), so a p90
"first response within 12 min" is a response that really happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from zhiban.core.errors import InvalidInput
from zhiban.sla.model import ClockState

# A report is computed over one period; this bounds memory for the largest desks we plan for.
MAX_FACTS = 2_000_000
MAX_NAME = 200

RecordId = int | str
DetectedBy = Literal["telemetry", "alert", "ticket", "manual"]
DETECTED_BY: tuple[str, ...] = ("telemetry", "alert", "ticket", "manual")
SOLVED_STATUSES = frozenset({"solved", "closed"})
TICKET_STATUSES = frozenset({"new", "open", "pending", "on_hold", "solved", "closed"})

T = TypeVar("T")


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InvalidInput(f"{name} must be a timezone-aware datetime, not {value!r}")


def _not_before(name: str, value: datetime | None, start_name: str, start: datetime) -> None:
    if value is not None and value < start:
        raise InvalidInput(f"{name} ({value.isoformat()}) is before {start_name} ({start.isoformat()})")


def _text(name: str, value: str, *, empty: bool = False) -> None:
    if not isinstance(value, str) or len(value) > MAX_NAME or (not empty and not value.strip()):
        raise InvalidInput(f"{name} must be a string of 1-{MAX_NAME} characters, not {value!r}")


def bounded(items: Iterable[T], what: str, limit: int = MAX_FACTS) -> list[T]:
    """Materialize `items`, refusing more than `limit` of them."""
    out: list[T] = []
    for item in items:
        if len(out) >= limit:
            raise InvalidInput(f"too many {what}: at most {limit} per report")
        out.append(item)
    return out


# -- inputs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketFact:
    """One ticket as the reports see it (times in UTC; the customer's country and zone pick its calendar)."""

    ticket_id: RecordId
    organization_id: str
    plan: str
    priority: str
    created_at: datetime
    first_public_reply_at: datetime | None
    solved_at: datetime | None
    reopened_count: int
    public_agent_replies_before_solve: int
    status: str
    team: str | None
    customer_country: str
    customer_tz: str

    def __post_init__(self) -> None:
        _text("organization_id", self.organization_id)
        _text("plan", self.plan)
        _text("priority", self.priority)
        _text("customer_country", self.customer_country)
        _text("customer_tz", self.customer_tz)
        if self.team is not None:
            _text("team", self.team)
        _aware("created_at", self.created_at)
        _aware("first_public_reply_at", self.first_public_reply_at)
        _aware("solved_at", self.solved_at)
        _not_before("first_public_reply_at", self.first_public_reply_at, "created_at", self.created_at)
        _not_before("solved_at", self.solved_at, "created_at", self.created_at)
        if self.status not in TICKET_STATUSES:
            raise InvalidInput(f"status must be one of {sorted(TICKET_STATUSES)}, not {self.status!r}")
        if self.reopened_count < 0 or self.public_agent_replies_before_solve < 0:
            raise InvalidInput("reopened_count and public_agent_replies_before_solve must not be negative")

    @property
    def is_solved(self) -> bool:
        """Solved (or closed after solving) as of the report."""
        return self.status in SOLVED_STATUSES and self.solved_at is not None


@dataclass(frozen=True, slots=True)
class ClockFact:
    """One SLA clock cycle as stored by the SLA feature (state: active, paused, fulfilled, breached)."""

    ticket_id: RecordId
    plan: str
    metric: str
    state: str
    due_at: datetime | None
    fulfilled_at: datetime | None
    breached_at: datetime | None
    target_seconds: int

    def __post_init__(self) -> None:
        _text("plan", self.plan)
        _text("metric", self.metric)
        try:
            ClockState(self.state)
        except ValueError as exc:
            allowed = ", ".join(s.value for s in ClockState)
            raise InvalidInput(f"clock state must be one of {allowed}, not {self.state!r}") from exc
        for name in ("due_at", "fulfilled_at", "breached_at"):
            _aware(name, getattr(self, name))
        if self.target_seconds <= 0:
            raise InvalidInput("target_seconds must be positive")
        if self.state == ClockState.BREACHED and self.breached_at is None:
            raise InvalidInput("a breached clock needs breached_at")


@dataclass(frozen=True, slots=True)
class IncidentFact:
    """One incident: when it was triggered, acknowledged, resolved; who detected it; whom it touched."""

    incident_id: RecordId
    service: str
    team: str
    triggered_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    detected_by: str
    organization_ids: frozenset[str] = frozenset()
    first_related_ticket_at: datetime | None = None
    title: str = ""
    severity: str = "major"

    def __post_init__(self) -> None:
        _text("service", self.service)
        _text("team", self.team)
        _text("title", self.title, empty=True)
        _aware("triggered_at", self.triggered_at)
        _aware("acknowledged_at", self.acknowledged_at)
        _aware("resolved_at", self.resolved_at)
        _aware("first_related_ticket_at", self.first_related_ticket_at)
        _not_before("acknowledged_at", self.acknowledged_at, "triggered_at", self.triggered_at)
        _not_before("resolved_at", self.resolved_at, "triggered_at", self.triggered_at)
        if self.detected_by not in DETECTED_BY:
            raise InvalidInput(f"detected_by must be one of {', '.join(DETECTED_BY)}, not {self.detected_by!r}")
        if not isinstance(self.organization_ids, frozenset):
            object.__setattr__(self, "organization_ids", frozenset(self.organization_ids))


@dataclass(frozen=True, slots=True)
class PageFact:
    """One page sent to a person (a notification that asks them to act), with their zone."""

    person_id: RecordId
    person_tz: str
    sent_at: datetime
    channel: str

    def __post_init__(self) -> None:
        _text("person_tz", self.person_tz)
        _text("channel", self.channel)
        _aware("sent_at", self.sent_at)


HOURS_CLASSES: tuple[str, ...] = ("business_hours", "out_of_hours", "holiday")
PAGING_MODES: tuple[str, ...] = ("dedicated", "standby")


@dataclass(frozen=True, slots=True)
class OnDutyFact:
    """A ticket filed under a paging support mode: when it was filed, first paged, acknowledged and answered.

    `mode` is the plan's mode when the ticket was filed; `hours` where the filing fell on the customer's calendar.
    """

    ticket_id: RecordId
    organization_id: str
    mode: str
    hours: str
    created_at: datetime
    paged_at: datetime | None
    acknowledged_at: datetime | None
    first_public_reply_at: datetime | None

    def __post_init__(self) -> None:
        _text("organization_id", self.organization_id)
        if self.mode not in PAGING_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(PAGING_MODES)}, not {self.mode!r}")
        if self.hours not in HOURS_CLASSES:
            raise InvalidInput(f"hours must be one of {', '.join(HOURS_CLASSES)}, not {self.hours!r}")
        for name in ("created_at", "paged_at", "acknowledged_at", "first_public_reply_at"):
            _aware(name, getattr(self, name))
        for name in ("paged_at", "acknowledged_at", "first_public_reply_at"):
            _not_before(name, getattr(self, name), "created_at", self.created_at)


@dataclass(frozen=True, slots=True)
class DeflectionFact:
    """Ticket drafts started in a period and how many ended without a ticket after reading an article."""

    drafts: int
    deflected: int

    def __post_init__(self) -> None:
        if self.drafts < 0 or not 0 <= self.deflected <= self.drafts:
            raise InvalidInput("deflection needs 0 <= deflected <= drafts")


# -- shared results -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Definition:
    """What a figure means, in English and Chinese, to show next to it."""

    key: str
    en: str
    zh: str

    def text(self, lang: str) -> str:
        """The definition in `lang` ("zh" or anything else for English)."""
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Nearest-rank p50 and p90 of n durations (None when n = 0)."""

    p50: timedelta | None
    p90: timedelta | None
    n: int


@dataclass(frozen=True, slots=True)
class Ratio:
    """part / whole as a percentage (None when whole = 0, so "no data" never reads as 0 %)."""

    part: int
    whole: int
    pct: float | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pct", 100.0 * self.part / self.whole if self.whole else None)


def nearest_rank(sorted_values: Sequence[T], p: float) -> T | None:
    """The nearest-rank p-th percentile (0 < p <= 100) of ascending values; None if empty."""
    if not 0 < p <= 100:
        raise InvalidInput(f"percentile must be in (0, 100], not {p}")
    if not sorted_values:
        return None
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def percentiles(durations: Iterable[timedelta]) -> Percentiles:
    """p50 and p90 (nearest rank) of some durations."""
    values = sorted(durations)
    return Percentiles(nearest_rank(values, 50), nearest_rank(values, 90), len(values))


def mean_duration(durations: Sequence[timedelta]) -> timedelta | None:
    """The arithmetic mean (None when empty)."""
    if not durations:
        return None
    return sum(durations, timedelta(0)) / len(durations)
