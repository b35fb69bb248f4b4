"""The customer SLA report of one organization and month: plan targets against what happened, incidents, credits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from zhiban.core.errors import InvalidInput
from zhiban.reports.credits import (
    DEMO_CREDIT_POLICIES,
    Availability,
    CreditPolicy,
    ServiceCredit,
    month_bounds,
    monthly_availability,
    service_credit,
)
from zhiban.reports.metrics import Breach, breaches
from zhiban.reports.model import ClockFact, IncidentFact, OnDutyFact, Ratio, RecordId, TicketFact, bounded
from zhiban.reports.on_duty import OnDutyTimes, on_duty_times
from zhiban.sla.model import METRIC_ORDER, ClockState

MAX_TARGETS = 200
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class PlanTarget:
    """One promise of the plan: `metric` for `priority` within `target`, on the "24x7" or "business" calendar."""

    priority: str
    metric: str
    target: timedelta
    calendar: str


@dataclass(frozen=True, slots=True)
class TargetRow:
    """A plan target and what happened to the month's clock cycles under it."""

    target: PlanTarget
    met: int
    breached: int
    open: int  # active or paused: not decided yet
    compliance: Ratio


@dataclass(frozen=True, slots=True)
class IncidentLine:
    incident_id: RecordId
    title: str
    service: str
    severity: str
    started_at: datetime
    resolved_at: datetime | None
    duration_in_month: timedelta


@dataclass(frozen=True, slots=True)
class CustomerSlaReport:
    organization_id: str
    organization_name: str
    plan: str
    year: int
    month: int
    tz: str  # the zone the month and the times are shown in
    generated_at: datetime
    rows: tuple[TargetRow, ...]
    compliance: Ratio  # all decided cycles of the month
    breaches: tuple[Breach, ...]
    availability: Availability
    incidents: tuple[IncidentLine, ...]
    credit: ServiceCredit
    monthly_fee: Decimal | None
    currency: str
    on_duty: OnDutyTimes | None = None  # None: no ticket of the month was filed in a paging mode


def plan_targets(plan: object) -> tuple[PlanTarget, ...]:
    """The targets of a zhiban.sla.plans.Plan as report rows (priority order, then metric order)."""
    from zhiban.sla.plans import Plan

    if not isinstance(plan, Plan):
        raise InvalidInput("plan_targets needs a zhiban.sla.plans.Plan")
    rows = [
        PlanTarget(str(priority), str(t.metric), t.duration, t.calendar)
        for priority, targets in plan.targets
        for t in targets
    ]
    order = {str(m): i for i, m in enumerate(METRIC_ORDER)}
    return tuple(sorted(rows, key=lambda r: (r.priority, order.get(r.metric, 99))))


def customer_sla_report(
    *,
    organization_id: str,
    organization_name: str,
    plan: str,
    year: int,
    month: int,
    targets: Sequence[PlanTarget],
    tickets: Iterable[TicketFact],
    clocks: Iterable[ClockFact],
    incidents: Iterable[IncidentFact],
    now: datetime,
    tz: str = "UTC",
    monthly_fee: Decimal | None = None,
    currency: str = "CNY",
    credit_policies: dict[str, CreditPolicy] = DEMO_CREDIT_POLICIES,
    on_duty: Iterable[OnDutyFact] = (),
) -> CustomerSlaReport:
    """Build the month's report from the organization's tickets (created in the month), their clocks, and incidents.

    Clocks of tickets not in `tickets` are ignored (they belong to another organization or month); a clock
    is matched to a target by the ticket's priority and the clock's metric. `on_duty` facts of the organization's
    tickets filed in the month give the on-duty times.
    """
    if not organization_name.strip() or len(organization_name) > MAX_NAME:
        raise InvalidInput(f"organization name must be 1-{MAX_NAME} characters")
    if len(targets) > MAX_TARGETS:
        raise InvalidInput(f"at most {MAX_TARGETS} plan targets")
    start, end = month_bounds(year, month, tz)
    own = {t.ticket_id: t for t in bounded(tickets, "tickets") if t.organization_id == organization_id}
    own_clocks = [c for c in bounded(clocks, "clocks") if c.ticket_id in own]
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(ClockState, 0))
    for clock in own_clocks:
        counts[(own[clock.ticket_id].priority, clock.metric)][clock.state] += 1
    rows = []
    for target in targets:
        c = counts.get((target.priority, target.metric), dict.fromkeys(ClockState, 0))
        met, breached = c[ClockState.FULFILLED], c[ClockState.BREACHED]
        rows.append(
            TargetRow(target, met, breached, c[ClockState.ACTIVE] + c[ClockState.PAUSED], Ratio(met, met + breached))
        )
    decided_met = sum(1 for c in own_clocks if c.state == ClockState.FULFILLED)
    decided_breached = sum(1 for c in own_clocks if c.state == ClockState.BREACHED)
    compliance = Ratio(decided_met, decided_met + decided_breached)

    touching = [i for i in bounded(incidents, "incidents") if organization_id in i.organization_ids]
    availability = monthly_availability(touching, organization_id, year, month, now, tz)
    lines = []
    for i in touching:
        stop = i.resolved_at or now
        overlap = min(stop, end, max(now, start)) - max(i.triggered_at, start)
        if i.triggered_at < end and stop > start:
            lines.append(
                IncidentLine(
                    i.incident_id, i.title, i.service, i.severity, i.triggered_at, i.resolved_at,
                    max(overlap, timedelta(0)),
                )
            )  # fmt: skip
    lines.sort(key=lambda line: line.started_at)
    credit = service_credit(
        plan,
        sla_compliance_pct=compliance.pct,
        availability_pct=availability.pct,
        monthly_fee=monthly_fee,
        policies=credit_policies,
    )
    return CustomerSlaReport(
        organization_id=organization_id,
        organization_name=organization_name,
        plan=plan,
        year=year,
        month=month,
        tz=tz,
        generated_at=now,
        rows=tuple(rows),
        compliance=compliance,
        breaches=tuple(breaches(own_clocks)),
        availability=availability,
        incidents=tuple(lines),
        credit=credit,
        monthly_fee=monthly_fee,
        currency=currency,
        on_duty=_on_duty(on_duty, organization_id, start, end),
    )


def _on_duty(facts: Iterable[OnDutyFact], organization_id: str, start: datetime, end: datetime) -> OnDutyTimes | None:
    own = [f for f in bounded(facts, "tickets") if f.organization_id == organization_id and start <= f.created_at < end]
    return on_duty_times(own) if own else None
