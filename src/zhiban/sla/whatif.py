"""What-if due times: when each metric of a ticket filed now would fall due."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from zhiban.calendars import service as calendars
from zhiban.calendars.model import BusinessCalendar, always_open
from zhiban.core.errors import InvalidInput
from zhiban.sla.model import (
    CALENDAR_24X7,
    METRIC_ORDER,
    Policy,
    Priority,
)
from zhiban.sla.plans import business_calendar
from zhiban.sla.policies import _plan_key, builtin_rules, current_policy_version, policy_from_json, policy_version

# -- what-if -------------------------------------------------------------------------------------------


def _builtin_policy() -> Policy:
    return policy_from_json("builtin", builtin_rules())


def due_times(
    plan: str,
    priority: str,
    country: str,
    tz: str,
    at: datetime,
    session: Session | None = None,
    channel: str | None = None,
    category: str | None = None,
) -> dict[str, datetime | None]:
    """Due time of each metric for a ticket filed at `at` with no further events (None: no target).

    With a session: the plans and policy in force and the desk's calendar for that country and zone;
    without: the built-in demo plans on the country's official calendar.
    """
    if at.tzinfo is None:
        raise InvalidInput("the filing time needs a zone")
    try:
        prio = Priority(priority.upper())
    except ValueError as exc:
        raise InvalidInput("priority must be P1, P2, P3 or P4") from exc
    key = _plan_key(plan)
    zone = _zone(tz)
    business: BusinessCalendar | None = None
    if session is not None:
        policy = policy_version(session, current_policy_version(session))[0]
        row = calendars.find_calendar(session, f"{country.strip().upper()} {tz}")
        if row is not None:
            business = calendars.calendar_version(session, row.id, row.version)
    else:
        policy = _builtin_policy()
    if not any(r.plan == key for r in policy.rules):
        known = sorted({r.plan for r in policy.rules if r.plan})
        raise InvalidInput(f"unknown plan {plan!r}; known: {', '.join(known)}")
    if business is None:
        business = business_calendar(country.strip().upper(), tz)
    cal_for = business
    targets = policy.targets_for(key, prio, channel, category)
    out: dict[str, datetime | None] = {}
    for metric in METRIC_ORDER:
        target = targets.get(metric)
        if target is None:
            out[f"{metric.value}_due"] = None
            continue
        cal = always_open(tz) if target.calendar == CALENDAR_24X7 else cal_for
        out[f"{metric.value}_due"] = cal.add_business_time(at, target.duration).astimezone(zone)
    return out


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}") from exc
