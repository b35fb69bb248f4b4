"""Service credits at their thresholds, and monthly availability from incident minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.reports.credits import (
    CreditPolicy,
    CreditTier,
    merged_downtime,
    month_bounds,
    monthly_availability,
    service_credit,
)
from zhiban.reports.model import IncidentFact


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("availability", "credit"),
    [
        (100.0, 0),
        (99.9, 0),  # thresholds are strict: exactly 99.9 % earns nothing
        (99.89, 10),
        (99.0, 10),
        (98.99, 25),
        (95.0, 25),
        (94.99, 50),
        (0.0, 50),
    ],
)
def test_enterprise_availability_tiers(availability: float, credit: float) -> None:
    got = service_credit("Enterprise", sla_compliance_pct=None, availability_pct=availability)
    assert got.credit_pct == credit


@pytest.mark.parametrize(("compliance", "credit"), [(99.5, 0), (99.49, 10), (99.0, 10), (98.99, 25), (50.0, 25)])
def test_premium_compliance_tiers(compliance: float, credit: float) -> None:
    assert service_credit("Premium", sla_compliance_pct=compliance, availability_pct=None).credit_pct == credit


def test_standard_and_basic_earn_no_credit() -> None:
    for plan in ("Standard", "Basic", "basic", "NoSuchPlan"):
        got = service_credit(plan, sla_compliance_pct=10.0, availability_pct=10.0, monthly_fee=Decimal("999"))
        assert (got.credit_pct, got.amount, got.reasons) == (0, Decimal("0.00"), ())


def test_the_largest_credit_wins_and_the_amount_rounds_half_up() -> None:
    # Compliance 96 % → 25 % tier; availability 99.95 % → none. 12,345.67 × 25 % = 3,086.4175 → 3,086.42.
    got = service_credit("Enterprise", sla_compliance_pct=96.0, availability_pct=99.95, monthly_fee=Decimal("12345.67"))
    assert got.credit_pct == 25
    assert got.amount == Decimal("3086.42")
    assert [(r.measure, r.below_pct, r.credit_pct) for r in got.reasons] == [("sla_compliance", 99.0, 25)]
    # 10 % of 0.05 = 0.005 → rounds half up to 0.01.
    tiny = service_credit("Enterprise", sla_compliance_pct=None, availability_pct=99.5, monthly_fee=Decimal("0.05"))
    assert tiny.amount == Decimal("0.01")


def test_a_plan_cap_limits_the_credit() -> None:
    policy = CreditPolicy("Gold", {"availability": (CreditTier(99.0, 40), CreditTier(90.0, 80))}, cap_pct=30)
    got = service_credit("Gold", sla_compliance_pct=None, availability_pct=85.0, policies={"Gold": policy})
    assert got.credit_pct == 30


def test_bad_percentages_are_refused() -> None:
    with pytest.raises(InvalidInput):
        service_credit("Enterprise", sla_compliance_pct=101.0, availability_pct=None)
    with pytest.raises(InvalidInput):
        CreditPolicy("X", {"uptime": ()})


def test_month_bounds_follow_the_zone() -> None:
    # October 2026 in Shanghai (UTC+8) starts 30 Sep 16:00 UTC and lasts 31 days.
    start, end = month_bounds(2026, 10, "Asia/Shanghai")
    assert start == utc(2026, 9, 30, 16)
    assert end - start == timedelta(days=31)
    # October 2026 in London loses its summer hour on the 25th: 31 days + 1 hour.
    start, end = month_bounds(2026, 10, "Europe/London")
    assert (start, end) == (utc(2026, 9, 30, 23), utc(2026, 11, 1, 0))


def outage(org: str, start: datetime, end: datetime | None) -> IncidentFact:
    return IncidentFact("I", "media", "network", start, None, end, "alert", frozenset({org}))


def test_merged_downtime_counts_overlaps_once() -> None:
    a, b = utc(2026, 10, 3, 3), utc(2026, 10, 3, 4, 10)
    # 03:00-04:10 and 04:00-04:30 → union 03:00-04:30 = 90 min; a span outside the window adds nothing.
    spans = [(a, b), (utc(2026, 10, 3, 4), utc(2026, 10, 3, 4, 30)), (utc(2026, 9, 1), utc(2026, 9, 2))]
    assert merged_downtime(spans, utc(2026, 10, 1), utc(2026, 11, 1)) == timedelta(minutes=90)


def test_monthly_availability_of_an_organization() -> None:
    incidents = [
        outage("org-live", utc(2026, 10, 3, 3), utc(2026, 10, 3, 4, 10)),  # 70 min
        outage("org-live", utc(2026, 10, 3, 4), utc(2026, 10, 3, 4, 30)),  # overlaps: adds 20 min
        outage("org-other", utc(2026, 10, 5), utc(2026, 10, 6)),  # another customer's
        outage("org-live", utc(2026, 9, 30, 15), utc(2026, 9, 30, 17)),  # before the Shanghai month: 60 min count
    ]
    got = monthly_availability(incidents, "org-live", 2026, 10, now=utc(2026, 11, 5), tz="Asia/Shanghai")
    # 150 min down of 31 × 1440 = 44,640 min → 99.664 %.
    assert got.downtime == timedelta(minutes=150)
    assert got.pct == pytest.approx(100 * (44_640 - 150) / 44_640)
    assert service_credit("Enterprise", sla_compliance_pct=None, availability_pct=got.pct).credit_pct == 10


def test_availability_of_a_running_month_counts_open_incidents_until_now() -> None:
    now = utc(2026, 10, 10, 16)  # the month began 30 Sep 16:00 UTC: 10 days = 14,400 min so far
    incidents = [outage("org-live", utc(2026, 10, 10, 15), None)]  # open for 60 min so far
    got = monthly_availability(incidents, "org-live", 2026, 10, now=now, tz="Asia/Shanghai")
    assert got.period_end == now
    assert got.pct == pytest.approx(100 * (14_400 - 60) / 14_400)
    before = monthly_availability(incidents, "org-live", 2026, 12, now=now, tz="Asia/Shanghai")
    assert before.pct is None  # a month not begun yet has no availability
