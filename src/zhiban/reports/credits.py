"""Service credits from plan rules, and monthly availability from the incident minutes that touched an organization.

The demo's rules (DEMO_CREDIT_POLICIES) are data: each plan lists tiers "measure below X % → credit Y % of
the monthly fee" that apply to monthly SLA compliance and to platform availability alike. A month earns
the largest credit any measure reaches (credits do not add up), capped by the plan's maximum:

- Enterprise: < 99.9 % → 10 %, < 99 % → 25 %, < 95 % → 50 %
- Premium:    < 99.5 % → 10 %, < 99 % → 25 %
- Standard, Basic: no credits

A measure with no data (no decided SLA cycles) earns nothing. Amounts are Decimal, rounded half-up to cents.
"""

from __future__ import annotations

import calendar as calendar_lib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zhiban.core.errors import InvalidInput
from zhiban.reports.definitions import definition
from zhiban.reports.model import Definition, IncidentFact, bounded

MEASURES = ("sla_compliance", "availability")


@dataclass(frozen=True, slots=True)
class CreditTier:
    """Below `below_pct` (strictly) the month earns `credit_pct` % of the fee."""

    below_pct: float
    credit_pct: float

    def __post_init__(self) -> None:
        if not 0 < self.below_pct <= 100 or not 0 < self.credit_pct <= 100:
            raise InvalidInput("credit tiers need 0 < below_pct <= 100 and 0 < credit_pct <= 100")


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    """A plan's credit tiers per measure and the largest credit a month can earn."""

    plan: str
    tiers: Mapping[str, tuple[CreditTier, ...]]
    cap_pct: float = 100.0

    def __post_init__(self) -> None:
        unknown = set(self.tiers) - set(MEASURES)
        if unknown:
            raise InvalidInput(f"unknown credit measures {sorted(unknown)}; use {', '.join(MEASURES)}")
        if not 0 <= self.cap_pct <= 100:
            raise InvalidInput("cap_pct must be within 0..100")


_ENTERPRISE_TIERS = (CreditTier(99.9, 10), CreditTier(99.0, 25), CreditTier(95.0, 50))
_PREMIUM_TIERS = (CreditTier(99.5, 10), CreditTier(99.0, 25))

DEMO_CREDIT_POLICIES: dict[str, CreditPolicy] = {
    "Enterprise": CreditPolicy(
        "Enterprise", {"sla_compliance": _ENTERPRISE_TIERS, "availability": _ENTERPRISE_TIERS}, cap_pct=50
    ),
    "Premium": CreditPolicy("Premium", {"sla_compliance": _PREMIUM_TIERS, "availability": _PREMIUM_TIERS}, cap_pct=25),
    "Standard": CreditPolicy("Standard", {}),
    "Basic": CreditPolicy("Basic", {}),
}


@dataclass(frozen=True, slots=True)
class CreditReason:
    """One measure that fell below a threshold."""

    measure: str
    value_pct: float
    below_pct: float
    credit_pct: float


@dataclass(frozen=True, slots=True)
class ServiceCredit:
    plan: str
    credit_pct: float
    amount: Decimal | None  # None when no fee was given
    reasons: tuple[CreditReason, ...]
    definition: Definition = field(default_factory=lambda: definition("service_credit"))


def _policy_for(plan: str, policies: Mapping[str, CreditPolicy]) -> CreditPolicy:
    found = policies.get(plan)
    if found is None:  # plan keys are stored lower case elsewhere: match case-insensitively
        found = next((p for name, p in policies.items() if name.lower() == plan.lower()), None)
    return found if found is not None else CreditPolicy(plan, {})


def service_credit(
    plan: str,
    *,
    sla_compliance_pct: float | None,
    availability_pct: float | None,
    monthly_fee: Decimal | None = None,
    policies: Mapping[str, CreditPolicy] = DEMO_CREDIT_POLICIES,
) -> ServiceCredit:
    """The credit a month earns under the plan's rules (a plan without rules earns none)."""
    policy = _policy_for(plan, policies)
    values = {"sla_compliance": sla_compliance_pct, "availability": availability_pct}
    reasons: list[CreditReason] = []
    for measure, value in values.items():
        if value is None:
            continue
        if not 0 <= value <= 100:
            raise InvalidInput(f"{measure} must be a percentage within 0..100, not {value}")
        hits = [t for t in policy.tiers.get(measure, ()) if value < t.below_pct]
        if hits:
            worst = max(hits, key=lambda t: t.credit_pct)
            reasons.append(CreditReason(measure, value, worst.below_pct, worst.credit_pct))
    pct = min(policy.cap_pct, max((r.credit_pct for r in reasons), default=0.0))
    amount = None
    if monthly_fee is not None:
        if monthly_fee < 0:
            raise InvalidInput("monthly_fee must not be negative")
        amount = (monthly_fee * Decimal(str(pct)) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return ServiceCredit(policy.plan, pct, amount, tuple(reasons))


# -- availability -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Availability:
    period_start: datetime
    period_end: datetime
    downtime: timedelta
    pct: float | None  # None for an empty period (a month not begun yet)
    definition: Definition = field(default_factory=lambda: definition("availability"))


def month_bounds(year: int, month: int, tz: str = "UTC") -> tuple[datetime, datetime]:
    """[first local midnight of the month, first local midnight of the next) in UTC."""
    if not 1971 <= year <= 2198 or not 1 <= month <= 12:
        raise InvalidInput(f"bad month {year}-{month:02d}")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}") from exc
    days = calendar_lib.monthrange(year, month)[1]
    start = datetime(year, month, 1, tzinfo=zone)
    end = start + timedelta(days=days)  # wall-clock arithmetic in the zone, then converted
    return start.astimezone(UTC), end.replace(tzinfo=zone).astimezone(UTC)


def merged_downtime(spans: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> timedelta:
    """Total length of the union of spans clipped to [start, end) (overlaps counted once)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if min(b, end) > max(a, start))
    total = timedelta(0)
    cur_a: datetime | None = None
    cur_b = start
    for a, b in clipped:
        if cur_a is None or a > cur_b:
            if cur_a is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        elif b > cur_b:
            cur_b = b
    if cur_a is not None:
        total += cur_b - cur_a
    return total


def monthly_availability(
    incidents: Iterable[IncidentFact], organization_id: str, year: int, month: int, now: datetime, tz: str = "UTC"
) -> Availability:
    """Availability of the month (up to `now` if the month is running) for one organization.

    Every incident that lists the organization counts as downtime from trigger to resolve (to `now` if
    open); the caller passes only the incidents that mean the platform was unavailable to the customer.
    """
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    start, end = month_bounds(year, month, tz)
    end = min(end, max(start, now))
    spans = [
        (i.triggered_at, i.resolved_at or now)
        for i in bounded(incidents, "incidents")
        if organization_id in i.organization_ids
    ]
    down = merged_downtime(spans, start, end)
    length = end - start
    pct = 100.0 * (1 - down / length) if length > timedelta(0) else None
    return Availability(start, end, down, pct)
