"""Business calendars: table cases with independently known answers, DST, year ends, and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhiban.calendars import MON_FRI_9_18, BusinessCalendar, always_open, country_calendar
from zhiban.core.errors import InvalidInput

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
BER = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)

CN = country_calendar("CN", "Asia/Shanghai")
FULL_DAYS = dict.fromkeys(range(7), "00:00-24:00")


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)  # type: ignore[misc]


# -- the acceptance case and China's official 2026 arrangement -------------------------------------------
# Source: 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04): National Day 1-7 Oct off,
# Sun 20 Sep and Sat 10 Oct worked.


def test_friday_before_make_up_saturday_runs_into_saturday() -> None:
    due = CN.add_business_time(local(SH, 2026, 10, 9, 17, 50), 4 * H)
    assert due == local(SH, 2026, 10, 10, 12, 50)
    assert due.tzinfo is UTC


def test_national_day_week_is_closed_and_make_up_days_open() -> None:
    for day in range(1, 8):
        assert not CN.is_open(local(SH, 2026, 10, day, 10)), day
    assert CN.is_open(local(SH, 2026, 10, 8, 10))  # Thursday after the holiday: a working day in 2026
    assert CN.is_open(local(SH, 2026, 10, 10, 10))  # Saturday make-up day
    assert CN.is_open(local(SH, 2026, 9, 20, 10))  # Sunday make-up day
    assert not CN.is_open(local(SH, 2026, 10, 11, 10))  # ordinary Sunday
    # 30 Sep 17:00 + 2h: one hour left that day, then nothing until 8 Oct 09:00
    assert CN.add_business_time(local(SH, 2026, 9, 30, 17), 2 * H) == local(SH, 2026, 10, 8, 10)
    assert CN.business_time_between(local(SH, 2026, 9, 30, 18), local(SH, 2026, 10, 8, 9)) == timedelta(0)


def test_end_of_interval_is_due_there_not_at_next_opening() -> None:
    assert CN.add_business_time(local(SH, 2026, 10, 9, 17), H) == local(SH, 2026, 10, 9, 18)
    assert not CN.is_open(local(SH, 2026, 10, 9, 18))
    assert CN.next_open(local(SH, 2026, 10, 9, 18)) == local(SH, 2026, 10, 10, 9)
    assert CN.next_open(local(SH, 2026, 10, 9, 12)) == local(SH, 2026, 10, 9, 12)


def test_split_hours_and_seconds() -> None:
    cal = BusinessCalendar.create("Asia/Shanghai", dict.fromkeys(range(5), "09:00-12:00,13:30-18:00"))
    assert cal.add_business_time(local(SH, 2026, 3, 2, 11), 2 * H) == local(SH, 2026, 3, 2, 14, 30)
    start = local(SH, 2026, 3, 2, 11, 59, 59)
    assert cal.add_business_time(start, timedelta(seconds=2)) == local(SH, 2026, 3, 2, 13, 30, 1)
    # Friday 17:00 + 8h: 1h on Friday, then Monday 09:00-12:00 (3h) and 13:30-17:30 (4h)
    assert cal.add_business_time(local(SH, 2026, 3, 6, 17), 8 * H) == local(SH, 2026, 3, 9, 17, 30)


def test_interval_crossing_midnight_belongs_to_its_start_date() -> None:
    night = BusinessCalendar.create("UTC", {4: "22:00-02:00"}, holidays=[date(2026, 3, 13)])
    fri = datetime(2026, 3, 6, 23, tzinfo=UTC)
    assert night.add_business_time(fri, 2 * H) == datetime(2026, 3, 7, 1, tzinfo=UTC)
    assert night.is_open(datetime(2026, 3, 7, 1, 59, tzinfo=UTC))
    # Friday 13 March is a holiday: its night shift is gone, so next is Friday 20 March 22:00
    assert night.next_open(datetime(2026, 3, 7, 3, tzinfo=UTC)) == datetime(2026, 3, 20, 22, tzinfo=UTC)


def test_make_up_day_with_its_own_hours() -> None:
    cal = BusinessCalendar.create("Asia/Shanghai", MON_FRI_9_18, workdays={date(2026, 10, 10): "10:00-12:00"})
    assert not cal.is_open(local(SH, 2026, 10, 10, 9, 30))
    assert cal.add_business_time(local(SH, 2026, 10, 9, 17), 2 * H) == local(SH, 2026, 10, 10, 11)


def test_year_end_with_new_year_holiday() -> None:
    cal = BusinessCalendar.create("Europe/Berlin", MON_FRI_9_18, holidays=[date(2027, 1, 1)])
    # Thu 31 Dec 2026 17:00 + 2h: 1h that day; Fri 1 Jan holiday; weekend; Mon 4 Jan 10:00
    assert cal.add_business_time(local(BER, 2026, 12, 31, 17), 2 * H) == local(BER, 2027, 1, 4, 10)
    assert cal.business_time_between(local(BER, 2026, 12, 31, 0), local(BER, 2027, 1, 5, 0)) == 18 * H


# -- DST: 2026 US switches on 8 Mar and 1 Nov, the EU on 29 Mar and 25 Oct -----------------------------


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (NY, date(2026, 3, 8), 23),
        (NY, date(2026, 11, 1), 25),
        (NY, date(2026, 3, 9), 24),
        (BER, date(2026, 3, 29), 23),
        (BER, date(2026, 10, 25), 25),
    ],
)
def test_full_day_calendar_follows_dst_and_never_closes_at_midnight(zone: ZoneInfo, day: date, hours: int) -> None:
    cal = BusinessCalendar.create(str(zone), FULL_DAYS, holidays=[date(2030, 1, 1)])  # not the 7x24 shortcut
    assert not cal.always_open
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start.replace(tzinfo=None) + timedelta(days=1)
    assert cal.business_time_between(start, end.replace(tzinfo=zone)) == hours * H
    assert cal.is_open(start)
    assert cal.add_business_time(start - H, 2 * H) == (start + H).astimezone(UTC)


def test_new_york_interval_containing_the_skipped_and_repeated_hour() -> None:
    cal = BusinessCalendar.create("America/New_York", {6: "01:00-04:00"})
    # 8 Mar: 02:00-03:00 does not exist, so 01:00-04:00 lasts 2 real hours
    assert cal.business_time_between(local(NY, 2026, 3, 8, 0), local(NY, 2026, 3, 8, 5)) == 2 * H
    assert cal.add_business_time(local(NY, 2026, 3, 8, 1), 90 * timedelta(minutes=1)) == local(NY, 2026, 3, 8, 3, 30)
    # 1 Nov: 01:00-02:00 happens twice, so 01:00-04:00 lasts 4 real hours
    assert cal.business_time_between(local(NY, 2026, 11, 1, 0), local(NY, 2026, 11, 1, 5)) == 4 * H
    # (an ambiguous time with fold=1 never compares equal across zones, PEP 495: compare in UTC)
    second_one_thirty = local(NY, 2026, 11, 1, 1, 30, fold=1).astimezone(UTC)
    assert second_one_thirty == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert cal.add_business_time(local(NY, 2026, 11, 1, 1), 90 * timedelta(minutes=1)) == second_one_thirty


def test_nonexistent_start_maps_to_the_jump_and_ambiguous_end_to_first_occurrence() -> None:
    cal = BusinessCalendar.create("America/New_York", {6: "02:30-05:00,22:00-23:00"})
    assert cal.next_open(local(NY, 2026, 3, 8, 0)) == local(NY, 2026, 3, 8, 3)  # 02:30 does not exist
    assert cal.business_time_between(local(NY, 2026, 3, 8, 0), local(NY, 2026, 3, 8, 6)) == 2 * H
    ends_ambiguous = BusinessCalendar.create("America/New_York", {6: "00:00-01:30"})
    first = local(NY, 2026, 11, 1, 1, 30).astimezone(UTC)
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert ends_ambiguous.add_business_time(local(NY, 2026, 11, 1, 0), 90 * timedelta(minutes=1)) == first
    assert not ends_ambiguous.is_open(local(NY, 2026, 11, 1, 1, 10, fold=1))


def test_berlin_gap_interval_is_empty_and_repeated_interval_doubles() -> None:
    cal = BusinessCalendar.create("Europe/Berlin", {6: "02:00-03:00"})
    spring = cal.business_time_between(local(BER, 2026, 3, 29, 0), local(BER, 2026, 3, 29, 6))
    autumn = cal.business_time_between(local(BER, 2026, 10, 25, 0), local(BER, 2026, 10, 25, 6))
    assert (spring, autumn) == (timedelta(0), 2 * H)


# -- 7x24 ---------------------------------------------------------------------------------------------------


def test_always_open_is_elapsed_time() -> None:
    cal = always_open("Asia/Shanghai")
    start = local(NY, 2026, 3, 8, 1, 30).astimezone(UTC)  # UTC: aware arithmetic in a zone is wall-clock
    assert cal.add_business_time(start, 3 * H) == start + 3 * H
    assert cal.is_open(local(SH, 2026, 10, 1, 0))
    assert cal.business_time_between(start, start + 25 * H) == 25 * H
    assert always_open() is always_open("UTC")


# -- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: BusinessCalendar.create("Mars/Olympus", MON_FRI_9_18),
        lambda: BusinessCalendar.create("UTC", {0: "09:00-09:00"}),
        lambda: BusinessCalendar.create("UTC", {0: "25:00-26:00"}),
        lambda: BusinessCalendar.create("UTC", {0: "9am-5pm"}),
        lambda: BusinessCalendar.create("UTC", {7: "09:00-18:00"}),
        lambda: BusinessCalendar.create("UTC", MON_FRI_9_18, holidays=[date(2026, 1, 3)], workdays=[date(2026, 1, 3)]),
    ],
)
def test_bad_calendars_are_refused(build: object) -> None:
    with pytest.raises(InvalidInput):
        build()  # type: ignore[operator]


def test_bad_queries_are_refused() -> None:
    with pytest.raises(InvalidInput):
        CN.add_business_time(datetime(2026, 1, 1), H)  # naive
    with pytest.raises(InvalidInput):
        CN.add_business_time(local(SH, 2026, 1, 1), -H)
    with pytest.raises(InvalidInput):
        BusinessCalendar.create("UTC", {}).add_business_time(datetime(2026, 1, 1, tzinfo=UTC), H)
    with pytest.raises(InvalidInput):
        CN.add_business_time(datetime(1900, 1, 1, tzinfo=UTC), H)


def test_signed_between_and_zero_add() -> None:
    a, b = local(SH, 2026, 3, 2, 10), local(SH, 2026, 3, 3, 10)
    assert CN.business_time_between(b, a) == -9 * H
    assert CN.add_business_time(local(SH, 2026, 3, 1, 3), timedelta(0)) == local(SH, 2026, 3, 1, 3)


def test_calendars_are_hashable_values() -> None:
    a = BusinessCalendar.create("UTC", MON_FRI_9_18)
    b = BusinessCalendar.create("UTC", MON_FRI_9_18)
    a.is_open(datetime(2026, 1, 1, tzinfo=UTC))  # a has a cached table, b not: still equal
    assert a == b and hash(a) == hash(b)
    assert len({a, b, CN}) == 2


# -- properties ---------------------------------------------------------------------------------------------

NY_MIXED = BusinessCalendar.create(
    "America/New_York",
    {0: "09:00-12:00,13:30-18:00", 2: "22:00-02:00", 4: "09:00-17:00", 6: "01:00-04:00"},
    holidays=[date(2026, 11, 26), date(2026, 12, 25)],
    workdays={date(2026, 11, 28): "10:00-14:00"},
)
BER_FULL = BusinessCalendar.create("Europe/Berlin", FULL_DAYS, holidays=[date(2026, 12, 24)])
CALENDARS = [CN, NY_MIXED, BER_FULL, always_open("America/New_York")]
# days where things happen: DST switches, year end, China's Golden Week
INTERESTING = [
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 9, 30, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 12, 31, tzinfo=UTC),
]

calendars = st.sampled_from(CALENDARS)
moments = st.builds(
    lambda base, offset: base + timedelta(seconds=offset),
    st.sampled_from(INTERESTING),
    st.integers(min_value=-3 * 86400, max_value=3 * 86400),
)
durations = st.integers(min_value=0, max_value=30 * 86400).map(lambda s: timedelta(seconds=s))


@settings(max_examples=300, deadline=None)
@given(calendars, moments, durations)
def test_add_then_measure_gives_the_duration_back(cal: BusinessCalendar, start: datetime, d: timedelta) -> None:
    due = cal.add_business_time(start, d)
    assert due >= start
    assert cal.business_time_between(start, due) == d


@settings(max_examples=300, deadline=None)
@given(calendars, moments, durations, durations)
def test_add_is_additive_and_monotonic_in_duration(
    cal: BusinessCalendar, start: datetime, a: timedelta, b: timedelta
) -> None:
    first = cal.add_business_time(start, a)
    assert cal.add_business_time(first, b) == cal.add_business_time(start, a + b)
    assert cal.add_business_time(start, min(a, b)) <= cal.add_business_time(start, max(a, b))


@settings(max_examples=300, deadline=None)
@given(calendars, moments, moments, durations)
def test_add_is_monotonic_in_start(cal: BusinessCalendar, s1: datetime, s2: datetime, d: timedelta) -> None:
    early, late = min(s1, s2), max(s1, s2)
    assert cal.add_business_time(early, d) <= cal.add_business_time(late, d)


@settings(max_examples=300, deadline=None)
@given(calendars, moments, moments, moments)
def test_between_is_additive(cal: BusinessCalendar, a: datetime, b: datetime, c: datetime) -> None:
    ab, bc = cal.business_time_between(a, b), cal.business_time_between(b, c)
    assert ab + bc == cal.business_time_between(a, c)


def _open_by_wall_clock(cal: BusinessCalendar, moment: datetime) -> bool:
    """Reference: is the wall-clock reading inside an interval of that date or one crossing from the day before."""
    wall = moment.astimezone(cal.zone).replace(tzinfo=None)
    for back in (0, 1):
        day = wall.date() - timedelta(days=back)
        since_midnight = (wall - datetime.combine(day, datetime.min.time())).total_seconds()
        if any(a <= since_midnight < b for a, b in cal.hours_on(day)):
            return True
    return False


@settings(max_examples=60, deadline=None)
@given(calendars, moments, st.integers(min_value=0, max_value=2 * 24 * 60))
def test_between_matches_a_minute_by_minute_wall_clock_count(
    cal: BusinessCalendar, start: datetime, minutes: int
) -> None:
    # minute-aligned, so every interval boundary of these calendars falls on a sample point
    start = start.replace(second=0)
    step = timedelta(minutes=1)
    expected = sum(_open_by_wall_clock(cal, start + k * step) for k in range(minutes)) * step
    assert cal.business_time_between(start, start + minutes * step) == expected
    assert cal.is_open(start) == _open_by_wall_clock(cal, start)
