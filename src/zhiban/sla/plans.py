"""The demo support plans as data, the policy built from them, and the calendars their targets use."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from zhiban.calendars.countries import country_calendar
from zhiban.calendars.model import MON_FRI_9_18, BusinessCalendar, always_open
from zhiban.core.errors import NotFound
from zhiban.sla.model import (
    CALENDAR_24X7,
    CALENDAR_BUSINESS,
    CalendarResolver,
    Metric,
    Policy,
    PolicyRule,
    Priority,
    Target,
)

P1, P2, P3, P4 = Priority.P1, Priority.P2, Priority.P3, Priority.P4
FIRST, UPDATE, RESOLUTION = Metric.FIRST_RESPONSE, Metric.PERIODIC_UPDATE, Metric.RESOLUTION
DEFAULT_POLICY_NAME = "default"


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _business(metric: Metric, hours: float) -> Target:
    return Target(metric, _h(hours), CALENDAR_BUSINESS)


def _always(metric: Metric, hours: float) -> Target:
    return Target(metric, _h(hours), CALENDAR_24X7)


@dataclass(frozen=True, slots=True)
class Plan:
    """A support plan: its targets per priority and whether customers get proactive warnings."""

    name: str
    targets: tuple[tuple[Priority, tuple[Target, ...]], ...]
    proactive_warning: bool = False

    def targets_for(self, priority: Priority) -> tuple[Target, ...]:
        """This plan's targets for one priority."""
        return dict(self.targets).get(priority, ())


BASIC = Plan(
    "Basic",
    (
        (P1, (_business(FIRST, 8),)),
        (P2, (_business(FIRST, 9),)),
        (P3, (_business(FIRST, 27),)),
        (P4, (_business(FIRST, 27),)),
    ),
)
STANDARD = Plan(
    "Standard",
    (
        (P1, (_always(FIRST, 1),)),
        (P2, (_business(FIRST, 4),)),
        (P3, (_business(FIRST, 8),)),
        (P4, (_business(FIRST, 18),)),
    ),
)
PREMIUM = Plan(
    "Premium",
    (
        (P1, (_always(FIRST, 0.5), _always(RESOLUTION, 8))),
        (P2, (_always(FIRST, 2),)),
        (P3, (_business(FIRST, 4),)),
        (P4, (_business(FIRST, 8),)),
    ),
    proactive_warning=True,
)
ENTERPRISE = Plan(
    "Enterprise",
    (
        (P1, (_always(FIRST, 0.25), _always(UPDATE, 0.5), _always(RESOLUTION, 4))),
        (P2, (_always(FIRST, 1),)),
        (P3, (_always(FIRST, 4),)),
        (P4, (_always(FIRST, 8),)),
    ),
    proactive_warning=True,
)

PLANS: dict[str, Plan] = {plan.name: plan for plan in (BASIC, STANDARD, PREMIUM, ENTERPRISE)}


def policy_from_plans(
    plans: Iterable[Plan], name: str = DEFAULT_POLICY_NAME, first_rules: Iterable[PolicyRule] = ()
) -> Policy:
    """A policy with `first_rules` (e.g. per channel or category) checked before one rule per plan × priority."""
    rules = list(first_rules)
    for plan in plans:
        rules.extend(PolicyRule(plan=plan.name, priority=p, targets=t) for p, t in plan.targets)
    return Policy(name=name, rules=tuple(rules))


DEMO_POLICY = policy_from_plans(PLANS.values())


def resolve_demo_policy(name: str) -> Policy:
    """The demo policy by name (the only one is "default")."""
    if name != DEMO_POLICY.name:
        raise NotFound(f"no SLA policy named {name!r}")
    return DEMO_POLICY


@lru_cache(maxsize=512)
def business_calendar(country_code: str, tz: str) -> BusinessCalendar:
    """Business hours of the plans: Mon-Fri 09:00-18:00 in the customer's zone, on its country's calendar."""
    return country_calendar(country_code, tz, weekly_hours=MON_FRI_9_18)


def calendar_resolver(country_code: str, tz: str) -> CalendarResolver:
    """Resolve "24x7" to the 7x24 calendar and any other name to the customer's business calendar."""
    always, business = always_open(tz), business_calendar(country_code, tz)

    def resolve(name: str) -> BusinessCalendar:
        return always if name == CALENDAR_24X7 else business

    return resolve
