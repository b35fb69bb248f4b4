"""Report figures against hand-computed fixtures (every expected number is worked out in the comments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.reports.metrics import (
    BreachCause,
    HoursBucket,
    backlog,
    breaches,
    deflection_rate,
    first_response_split,
    hours_bucket,
    mtta_mttr,
    pages_per_person,
    proactive_ratio,
    resolution_stats,
    sla_compliance,
)
from zhiban.reports.model import (
    ClockFact,
    DeflectionFact,
    IncidentFact,
    PageFact,
    TicketFact,
    nearest_rank,
    percentiles,
)
from zhiban.sla.plans import business_calendar

BH, OOH, HOL = HoursBucket.BUSINESS_HOURS, HoursBucket.OUT_OF_HOURS, HoursBucket.HOLIDAY
MIN = timedelta(minutes=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ticket(
    ticket_id: int,
    created: datetime,
    reply_after: timedelta | None,
    *,
    plan: str = "Enterprise",
    priority: str = "P1",
    status: str = "open",
    solved_at: datetime | None = None,
    replies: int = 0,
    reopened: int = 0,
    country: str = "CN",
    tz: str = "Asia/Shanghai",
) -> TicketFact:
    return TicketFact(
        ticket_id=ticket_id,
        organization_id="org-1",
        plan=plan,
        priority=priority,
        created_at=created,
        first_public_reply_at=None if reply_after is None else created + reply_after,
        solved_at=solved_at,
        reopened_count=reopened,
        public_agent_replies_before_solve=replies,
        status=status,
        team="network",
        customer_country=country,
        customer_tz=tz,
    )


# -- percentiles ------------------------------------------------------------------------------------------


def test_nearest_rank_matches_the_textbook_example() -> None:
    # Nearest rank on 15, 20, 35, 40, 50: p30 → rank ceil(1.5) = 2 → 20; p50 → rank ceil(2.5) = 3 → 35;
    # p90 → rank ceil(4.5) = 5 → 50; p100 → 50.
    values = [15, 20, 35, 40, 50]
    assert nearest_rank(values, 30) == 20
    assert nearest_rank(values, 50) == 35
    assert nearest_rank(values, 90) == 50
    assert nearest_rank(values, 100) == 50
    assert nearest_rank([], 50) is None
    with pytest.raises(InvalidInput):
        nearest_rank(values, 0)


def test_percentiles_of_one_to_ten_minutes() -> None:
    # 1..10 min: p50 rank 5 → 5 min, p90 rank 9 → 9 min (nearest rank never interpolates).
    got = percentiles([MIN * n for n in (7, 3, 10, 1, 9, 2, 8, 4, 6, 5)])
    assert (got.p50, got.p90, got.n) == (5 * MIN, 9 * MIN, 10)


# -- first response split -----------------------------------------------------------------------------------

# Asia/Shanghai is UTC+8 all year, so 10:00 local is 02:00 UTC.
MAKEUP_SATURDAY = utc(2026, 10, 10, 2)  # Sat 10 Oct 2026 10:00: official make-up working day → business hours
NATIONAL_DAY = utc(2026, 10, 1, 2)  # Thu 1 Oct 2026 10:00: National Day → holiday
MONDAY_NIGHT = utc(2026, 10, 12, 14)  # Mon 12 Oct 2026 22:00 → out of hours
ORDINARY_SUNDAY = utc(2026, 10, 11, 7)  # Sun 11 Oct 2026 15:00 → out of hours (weekend, not a holiday)
MONDAY_OPENING = utc(2026, 10, 12, 1)  # Mon 12 Oct 2026 09:00 exactly: the calendar opens → business hours


def test_hours_bucket_on_the_china_calendar() -> None:
    cal = business_calendar("CN", "Asia/Shanghai")
    assert hours_bucket(MAKEUP_SATURDAY, cal) is BH
    assert hours_bucket(NATIONAL_DAY, cal) is HOL
    assert hours_bucket(MONDAY_NIGHT, cal) is OOH
    assert hours_bucket(ORDINARY_SUNDAY, cal) is OOH
    assert hours_bucket(MONDAY_OPENING, cal) is BH
    assert hours_bucket(MONDAY_OPENING - timedelta(seconds=1), cal) is OOH


def test_same_instant_is_a_holiday_for_a_us_customer() -> None:
    # 14:00 UTC on Mon 12 Oct 2026 is 22:00 in Shanghai (out of hours) but 10:00 in New York on
    # Columbus Day, a US federal holiday.
    assert hours_bucket(MONDAY_NIGHT, business_calendar("CN", "Asia/Shanghai")) is OOH
    assert hours_bucket(MONDAY_NIGHT, business_calendar("US", "America/New_York")) is HOL


def test_first_response_split_by_bucket_and_plan_priority() -> None:
    tickets = [
        ticket(1, MAKEUP_SATURDAY, 20 * MIN),  # Enterprise P1, business hours, 20 min
        ticket(2, NATIONAL_DAY, 50 * MIN),  # Enterprise P1, holiday, 50 min
        ticket(3, MONDAY_NIGHT, 30 * MIN),  # Enterprise P1, out of hours, 30 min
        ticket(4, ORDINARY_SUNDAY, 10 * MIN, plan="Standard", priority="P2"),  # out of hours, 10 min
        ticket(5, MONDAY_OPENING, 40 * MIN, plan="Standard", priority="P2"),  # business hours, 40 min
        ticket(6, utc(2026, 10, 2, 3), None),  # Fri 2 Oct 11:00, National Day holiday, no reply yet
        ticket(7, MONDAY_NIGHT, 12 * MIN, country="US", tz="America/New_York"),  # Columbus Day 10:00 → holiday
    ]
    split = first_response_split(tickets)
    # Overall business hours: 20, 40 → p50 rank 1 = 20 min, p90 rank ceil(1.8) = 2 → 40 min.
    assert split.overall[BH] == percentiles([20 * MIN, 40 * MIN])
    assert (split.overall[BH].p50, split.overall[BH].p90, split.overall[BH].n) == (20 * MIN, 40 * MIN, 2)
    # Out of hours: 30, 10 → sorted 10, 30: p50 = 10 min, p90 = 30 min.
    assert (split.overall[OOH].p50, split.overall[OOH].p90, split.overall[OOH].n) == (10 * MIN, 30 * MIN, 2)
    # Holiday: 50 (CN) and 12 (US) → p50 = 12 min, p90 = 50 min; the unanswered one is counted apart.
    assert (split.overall[HOL].p50, split.overall[HOL].p90, split.overall[HOL].n) == (12 * MIN, 50 * MIN, 2)
    assert split.unanswered == {BH: 0, OOH: 0, HOL: 1}
    ent = split.by_group[("Enterprise", "P1")]
    assert (ent[BH].n, ent[OOH].n, ent[HOL].n) == (1, 1, 2)
    assert ent[OOH].p50 == 30 * MIN
    std = split.by_group[("Standard", "P2")]
    assert (std[BH].p50, std[OOH].p50, std[HOL].n, std[HOL].p50) == (40 * MIN, 10 * MIN, 0, None)
    assert "nearest" in split.definition.en and "最近秩" in split.definition.zh


# -- SLA compliance and breaches ----------------------------------------------------------------------------


def clock(
    ticket_id: int,
    metric: str,
    state: str,
    due: datetime | None,
    fulfilled: datetime | None = None,
    breached: datetime | None = None,
    plan: str = "Enterprise",
) -> ClockFact:
    return ClockFact(ticket_id, plan, metric, state, due, fulfilled, breached, 900)


DUE = utc(2026, 10, 9, 2, 15)
CLOCKS = [
    clock(1, "first_response", "fulfilled", DUE, DUE - 5 * MIN),
    clock(2, "first_response", "fulfilled", DUE, DUE),  # at the due time exactly: met
    clock(3, "first_response", "breached", DUE, DUE + 25 * MIN, DUE),  # answered 25 min late
    clock(4, "first_response", "active", DUE + timedelta(days=1)),
    clock(3, "resolution", "breached", DUE + timedelta(hours=4), None, DUE + timedelta(hours=4)),  # still open
    clock(5, "resolution", "paused", None),
    clock(6, "first_response", "active", DUE, plan="Premium"),
]


def test_sla_compliance_per_metric_and_plan() -> None:
    report = sla_compliance(CLOCKS)
    fr = report.rows[("first_response", "Enterprise")]
    # met 2, breached 1 → 2 / 3 = 66.67 %; the active cycle is not decided.
    assert (fr.met, fr.breached, fr.active, fr.paused) == (2, 1, 1, 0)
    assert fr.compliance.pct == pytest.approx(200 / 3)
    res = report.rows[("resolution", "Enterprise")]
    assert (res.met, res.breached, res.paused, res.compliance.pct) == (0, 1, 1, 0.0)
    # Nothing decided yet reads "no data", not 0 %.
    assert report.rows[("first_response", "Premium")].compliance.pct is None
    assert (report.total.met, report.total.breached, report.total.compliance.pct) == (2, 2, 50.0)


def test_breaches_with_their_cause() -> None:
    found = breaches(CLOCKS)
    assert [(b.ticket_id, b.metric, b.cause) for b in found] == [
        (3, "first_response", BreachCause.LATE),
        (3, "resolution", BreachCause.UNFULFILLED),
    ]
    late, missing = found
    assert late.late_by == 25 * MIN
    assert late.describe("en") == "first public agent reply 25 min late"
    assert late.describe("zh") == "首次公开回复迟了 25 分钟"
    assert missing.late_by is None and "still missing" in missing.describe("en")


def test_a_breached_clock_needs_its_breach_time() -> None:
    with pytest.raises(InvalidInput):
        clock(1, "first_response", "breached", DUE)
    with pytest.raises(InvalidInput):
        clock(1, "first_response", "late", DUE)


# -- resolution and backlog -------------------------------------------------------------------------------------

T0 = utc(2026, 10, 13, 2)


def test_resolution_one_touch_and_reopen_rates() -> None:
    solved = T0 + timedelta(hours=3)
    tickets = [
        ticket(1, T0, MIN, status="solved", solved_at=solved, replies=1),  # one touch
        ticket(2, T0, MIN, status="solved", solved_at=solved, replies=3),
        ticket(3, T0, MIN, status="solved", solved_at=solved, replies=1, reopened=1),  # one reply, but reopened
        ticket(4, T0, MIN, status="open"),
        ticket(5, T0, MIN, status="closed", solved_at=solved, replies=2),
    ]
    stats = resolution_stats(tickets)
    # solved = 1, 2, 3, 5 → 4 / 5 = 80 %; one touch = ticket 1 → 1 / 4; reopened = ticket 3 → 1 / 4.
    assert (stats.resolution_rate.part, stats.resolution_rate.whole, stats.resolution_rate.pct) == (4, 5, 80.0)
    assert stats.one_touch.pct == 25.0
    assert stats.reopen.pct == 25.0
    assert resolution_stats([]).resolution_rate.pct is None


def test_backlog_count_age_and_bands() -> None:
    now = utc(2026, 10, 20, 12)
    tickets = [
        ticket(1, now - timedelta(hours=2), None, priority="P1"),
        ticket(2, now - timedelta(days=2), MIN, priority="P2"),
        ticket(3, now - timedelta(days=10), MIN, priority="P2"),
        ticket(4, now - timedelta(days=5), MIN, priority="P3", status="pending"),
        ticket(5, now - timedelta(days=1), MIN, status="solved", solved_at=now),  # not backlog
        ticket(6, now + timedelta(hours=1), None),  # created after the report time
    ]
    report = backlog(tickets, now)
    # Ages 2 h, 2 d, 5 d, 10 d: p50 rank 2 → 2 d; p90 rank ceil(3.6) = 4 → 10 d.
    assert report.count == 4
    assert (report.age.p50, report.age.p90) == (timedelta(days=2), timedelta(days=10))
    assert report.oldest == timedelta(days=10)
    assert report.by_priority == {"P1": 1, "P2": 2, "P3": 1}
    assert report.by_age_band == {"<1d": 1, "1-3d": 1, "3-7d": 1, ">=7d": 1}


# -- incidents -----------------------------------------------------------------------------------------------------


def incident(
    incident_id: str,
    service: str,
    team: str,
    triggered: datetime,
    ack_after: timedelta | None,
    resolve_after: timedelta | None,
    detected_by: str = "alert",
    first_ticket_after: timedelta | None = None,
) -> IncidentFact:
    return IncidentFact(
        incident_id=incident_id,
        service=service,
        team=team,
        triggered_at=triggered,
        acknowledged_at=None if ack_after is None else triggered + ack_after,
        resolved_at=None if resolve_after is None else triggered + resolve_after,
        detected_by=detected_by,
        first_related_ticket_at=None if first_ticket_after is None else triggered + first_ticket_after,
    )


def test_mtta_mttr_by_service_and_team() -> None:
    day = utc(2026, 10, 3)
    incidents = [
        incident("I1", "media", "network", day + timedelta(hours=3), 4 * MIN, 70 * MIN),
        incident("I2", "media", "network", day + timedelta(hours=10), 10 * MIN, 30 * MIN),
        incident("I3", "signaling", "core", day + timedelta(hours=12), None, 20 * MIN),  # resolved, never acked
        incident("I4", "signaling", "network", day + timedelta(hours=13), 2 * MIN, None),  # still open
    ]
    report = mtta_mttr(incidents)
    media, signaling = report.by_service["media"], report.by_service["signaling"]
    # media: MTTA (4 + 10) / 2 = 7 min; MTTR (70 + 30) / 2 = 50 min.
    assert (media.mtta, media.mttr, media.incidents) == (7 * MIN, 50 * MIN, 2)
    # signaling: only I4 was acked (2 min), only I3 resolved (20 min).
    assert (signaling.mtta, signaling.mttr, signaling.acknowledged, signaling.resolved) == (2 * MIN, 20 * MIN, 1, 1)
    # team network = I1, I2, I4: MTTA (4 + 10 + 2) / 3 = 5 min 20 s; MTTR (70 + 30) / 2 = 50 min.
    network = report.by_team["network"]
    assert (network.mtta, network.mttr) == (timedelta(minutes=5, seconds=20), 50 * MIN)
    assert (report.by_team["core"].mtta, report.by_team["core"].mttr) == (None, 20 * MIN)
    # overall: MTTA 16 / 3 min; MTTR (70 + 30 + 20) / 3 = 40 min.
    assert (report.overall.mtta, report.overall.mttr) == (timedelta(minutes=5, seconds=20), 40 * MIN)


def test_incident_times_must_be_in_order() -> None:
    with pytest.raises(InvalidInput):
        incident("I9", "media", "network", utc(2026, 10, 3), -MIN, None)
    with pytest.raises(InvalidInput):
        incident("I9", "media", "network", utc(2026, 10, 3), None, None, detected_by="psychic")


def test_proactive_ratio_and_lead_time() -> None:
    t = utc(2026, 10, 3, 19)
    incidents = [
        incident("P1", "media", "network", t, None, None, "telemetry", first_ticket_after=6 * MIN),  # 6 min ahead
        incident("P2", "media", "network", t, None, None, "alert", first_ticket_after=-10 * MIN),  # ticket first
        incident("P3", "media", "network", t, None, None, "ticket", first_ticket_after=timedelta(0)),  # from a ticket
        incident("P4", "media", "network", t, None, None, "alert"),  # no customer ever wrote in
        incident("P5", "media", "network", t, None, None, "manual", first_ticket_after=20 * MIN),
    ]
    report = proactive_ratio(incidents)
    # proactive: P1, P4, P5 → 3 / 5 = 60 %; lead times 6 and 20 min → p50 rank 1 = 6 min.
    assert (report.ratio.part, report.ratio.whole, report.ratio.pct) == (3, 5, 60.0)
    assert report.with_ticket == 4
    assert (report.lead_time.p50, report.lead_time.p90, report.lead_time.n) == (6 * MIN, 20 * MIN, 2)


def test_detected_at_the_same_moment_as_the_ticket_is_not_proactive() -> None:
    tie = incident("T", "media", "network", utc(2026, 10, 3), None, None, "alert", first_ticket_after=timedelta(0))
    assert proactive_ratio([tie]).ratio.pct == 0.0


# -- on-call load and deflection -------------------------------------------------------------------------------------


def test_pages_out_of_hours_and_in_sleep_hours_in_each_persons_zone() -> None:
    pages = [
        # alice, Shanghai (UTC+8)
        PageFact("alice", "Asia/Shanghai", utc(2026, 10, 13, 19, 30), "sms"),  # Wed 03:30 → out of hours, sleep
        PageFact("alice", "Asia/Shanghai", utc(2026, 10, 13, 2), "feishu"),  # Tue 10:00 → working hours
        PageFact("alice", "Asia/Shanghai", utc(2026, 10, 13, 13, 30), "feishu"),  # Tue 21:30 → out of hours only
        # bob, Los Angeles (PDT, UTC-7 in October)
        PageFact("bob", "America/Los_Angeles", utc(2026, 10, 13, 19, 30), "sms"),  # Tue 12:30 → working hours
        PageFact("bob", "America/Los_Angeles", utc(2026, 10, 13, 5), "voice"),  # Mon 22:00 → sleep starts at 22:00
        PageFact("bob", "America/Los_Angeles", utc(2026, 10, 17, 18), "sms"),  # Sat 11:00 → weekend, awake
        # carol, London (BST, UTC+1 until 25 Oct)
        PageFact("carol", "Europe/London", utc(2026, 10, 13, 7), "email"),  # Tue 08:00 → awake, before 09:00
    ]
    load = pages_per_person(pages).people
    assert (load["alice"].total, load["alice"].out_of_hours, load["alice"].sleep_hours) == (3, 2, 1)
    assert (load["bob"].total, load["bob"].out_of_hours, load["bob"].sleep_hours) == (3, 2, 1)
    assert (load["carol"].total, load["carol"].out_of_hours, load["carol"].sleep_hours) == (1, 1, 0)
    assert load["alice"].by_channel == {"feishu": 2, "sms": 1}


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(InvalidInput):
        pages_per_person([PageFact("x", "Mars/Olympus", utc(2026, 10, 13), "sms")])


def test_deflection_rate() -> None:
    # (23 + 7) / (100 + 50) = 20 %
    assert deflection_rate([DeflectionFact(100, 23), DeflectionFact(50, 7)]).ratio.pct == 20.0
    assert deflection_rate([]).ratio.pct is None
    with pytest.raises(InvalidInput):
        DeflectionFact(5, 6)


def test_naive_times_are_refused() -> None:
    with pytest.raises(InvalidInput):
        ticket(1, datetime(2026, 10, 1, 10), None)
    with pytest.raises(InvalidInput):
        backlog([], datetime(2026, 10, 1))
