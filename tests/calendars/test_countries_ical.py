"""Country calendars from `holidays` (with China's make-up days) and holidays read from iCalendar feeds."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from zhiban.calendars import country_calendar, holidays_from_ical, official_days
from zhiban.core.errors import InvalidInput, TooLarge

SH = ZoneInfo("Asia/Shanghai")


def test_china_2026_official_arrangement() -> None:
    # 国务院办公厅关于2026年部分节假日安排的通知: Oct 1-7 off; Sep 20 (Sun) and Oct 10 (Sat) worked;
    # Spring Festival Feb 15-23 off, Feb 14 and Feb 28 (Sat) worked; Jan 4 (Sun) and May 9 (Sat) worked.
    closed, worked = official_days("CN", [2026])
    weekdays_off = {date(2026, 10, d) for d in (1, 2, 5, 6, 7)} | {date(2026, 2, d) for d in (16, 17, 18, 19, 20, 23)}
    assert weekdays_off <= closed
    assert date(2026, 10, 8) not in closed
    assert worked == {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9)} | {
        date(2026, 9, 20),
        date(2026, 10, 10),
    }


def test_country_calendar_options() -> None:
    base = country_calendar("cn", "Asia/Shanghai", years=[2026])
    assert base.is_open(datetime(2026, 10, 10, 9, tzinfo=SH))
    assert base is country_calendar("CN", "Asia/Shanghai", years=[2026])  # cached: arrays are shared
    tweaked = country_calendar(
        "CN",
        "Asia/Shanghai",
        weekly_hours={d: "10:00-19:00" for d in range(5)},
        years=[2026],
        additions=[date(2026, 10, 9)],
        removals=[date(2026, 10, 7)],
        extra_workdays=[date(2026, 10, 11)],
    )
    assert not tweaked.is_open(datetime(2026, 10, 9, 12, tzinfo=SH))
    assert tweaked.is_open(datetime(2026, 10, 7, 18, 30, tzinfo=SH))
    assert tweaked.is_open(datetime(2026, 10, 11, 18, 30, tzinfo=SH))  # extra make-up Sunday, weekday hours
    assert not tweaked.is_open(datetime(2026, 10, 11, 9, 30, tzinfo=SH))


def test_us_calendar_has_no_make_up_days() -> None:
    us = country_calendar("US", "America/New_York", years=[2026])
    assert not us.is_open(datetime(2026, 7, 3, 10, tzinfo=ZoneInfo("America/New_York")))  # Jul 4 observed
    assert us.workdays == ()


@pytest.mark.parametrize("code", ["XX", "C", "12", ""])
def test_unknown_country_is_refused(code: str) -> None:
    with pytest.raises(InvalidInput):
        country_calendar(code, "UTC", years=[2026])


def test_years_are_bounded() -> None:
    with pytest.raises(InvalidInput):
        country_calendar("CN", "Asia/Shanghai", years=range(1900, 2100))


ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//zhiban test//EN\r
BEGIN:VEVENT\r
UID:national-day@example\r
DTSTAMP:20251104T000000Z\r
DTSTART;VALUE=DATE:20261001\r
DTEND;VALUE=DATE:20261008\r
SUMMARY:National Day\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:one-day@example\r
DTSTAMP:20251104T000000Z\r
DTSTART;VALUE=DATE:20260101\r
SUMMARY:New Year\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:two-days@example\r
DTSTAMP:20251104T000000Z\r
DTSTART;VALUE=DATE:20260501\r
DURATION:P2D\r
SUMMARY:Labour Day\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:meeting@example\r
DTSTAMP:20251104T000000Z\r
DTSTART:20260302T090000Z\r
DTEND:20260302T100000Z\r
SUMMARY:A timed meeting is no holiday\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:cancelled@example\r
DTSTAMP:20251104T000000Z\r
DTSTART;VALUE=DATE:20260601\r
STATUS:CANCELLED\r
SUMMARY:Cancelled\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_holidays_from_ical() -> None:
    days = holidays_from_ical(ICS)
    national = {date(2026, 10, 1) + timedelta(days=k) for k in range(7)}  # DTEND is exclusive
    assert days == national | {date(2026, 1, 1), date(2026, 5, 1), date(2026, 5, 2)}


def test_ical_bounds_and_garbage() -> None:
    with pytest.raises(TooLarge):
        holidays_from_ical(ICS, max_bytes=100)
    with pytest.raises(InvalidInput):
        holidays_from_ical(b"this is not a calendar")
    huge = ICS.replace(b"DTEND;VALUE=DATE:20261008", b"DTEND;VALUE=DATE:20301008")
    with pytest.raises(InvalidInput):
        holidays_from_ical(huge)
