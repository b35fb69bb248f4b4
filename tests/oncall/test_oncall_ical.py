"""iCalendar feeds: parse back with icalendar, UTC times, caller's DTSTAMP, stable UIDs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from zhiban.core.errors import InvalidInput
from zhiban.oncall import DailyWindow, Layer, Override, Schedule, shifts
from zhiban.oncall.ical import person_ical, schedule_ical, shift_uid

STAMP = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin_schedule() -> Schedule:
    start = datetime(2026, 3, 23, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    return Schedule(
        "sched-emea",
        "Europe/Berlin",
        (Layer("primary", ("ana", "ben"), start, restrictions=(DailyWindow(time(9), time(21)),)),),
        (Override("cy", utc(2026, 3, 30, 10), utc(2026, 3, 30, 12)),),
        name="EMEA network",
    )


def events(feed: bytes) -> list[Any]:
    return list(Calendar.from_ical(feed).walk("VEVENT"))


def test_schedule_feed_round_trips_through_icalendar() -> None:
    schedule = berlin_schedule()
    start, end = utc(2026, 3, 27), utc(2026, 4, 2)
    feed = schedule_ical(schedule, start, end, dtstamp=STAMP, person_names={"cy": "Cy Young"})
    parsed = events(feed)
    expected = shifts(schedule, start, end)
    assert len(parsed) == len(expected) > 0
    for event, shift in zip(parsed, expected, strict=True):
        assert event.decoded("dtstart") == shift.start and event.decoded("dtstart").utcoffset() == timedelta(0)
        assert event.decoded("dtend") == shift.end
        assert event.decoded("dtstamp") == STAMP
        assert str(event["uid"]) == shift_uid("sched-emea", shift)
    summaries = [str(e["summary"]) for e in parsed]
    assert "On call: Cy Young (EMEA network)" in summaries
    assert str(Calendar.from_ical(feed)["x-wr-calname"]) == "On call: EMEA network"
    # Times are written in UTC ("Z"), never as floating local times.
    assert b"DTSTART:20260330T070000Z" in feed  # 09:00 CEST on 30 March, after Berlin's clocks moved


def test_uids_are_unique_and_survive_a_sliding_window() -> None:
    schedule = berlin_schedule()
    monday = events(schedule_ical(schedule, utc(2026, 3, 30), utc(2026, 4, 6), dtstamp=STAMP))
    # The next export starts mid-shift: that shift keeps its real start, so its UID and DTSTART hold.
    later = events(schedule_ical(schedule, utc(2026, 3, 30, 15), utc(2026, 4, 6, 15), dtstamp=STAMP))
    assert len({str(e["uid"]) for e in monday}) == len(monday)
    by_uid = {str(e["uid"]): e for e in monday}
    first = later[0]
    assert first.decoded("dtstart") == utc(2026, 3, 30, 12)  # ben's turn resumes after cy's override
    assert str(first["uid"]) in by_uid
    assert by_uid[str(first["uid"])].decoded("dtstart") == first.decoded("dtstart")


def test_an_override_changes_uids_only_of_the_shifts_it_touches() -> None:
    schedule = berlin_schedule()
    window = (utc(2026, 4, 1), utc(2026, 4, 4))
    before = {str(e["uid"]) for e in events(schedule_ical(schedule, *window, dtstamp=STAMP))}
    changed = dataclasses.replace(
        schedule, overrides=(*schedule.overrides, Override("dee", utc(2026, 4, 2, 7), utc(2026, 4, 2, 10)))
    )
    after = events(schedule_ical(changed, *window, dtstamp=STAMP))
    kept = {str(e["uid"]) for e in after} & before
    assert len(before) == 3 and len(after) == 4  # 2 April: dee, then the rest of that day's turn
    assert len(kept) == 2


def test_person_feed_collects_one_person_across_schedules() -> None:
    emea = berlin_schedule()
    other = Schedule("sched-db", "UTC", (Layer("db", ("ben", "ana"), utc(2026, 3, 23)),), name="Database")
    start, end = utc(2026, 3, 30), utc(2026, 4, 2)
    parsed = events(person_ical([emea, other], "ana", start, end, dtstamp=STAMP, person_names={"ana": "Ana"}))
    expected = sorted(
        [(s.start, s.end) for sched in (emea, other) for s in shifts(sched, start, end) if s.person_id == "ana"]
    )
    assert [(e.decoded("dtstart"), e.decoded("dtend")) for e in parsed] == expected
    assert {str(e["summary"]) for e in parsed} == {"On call: Ana (EMEA network)", "On call: Ana (Database)"}
    assert len({str(e["uid"]) for e in parsed}) == len(parsed)


def test_feed_needs_an_aware_stamp_and_a_bounded_window() -> None:
    schedule = berlin_schedule()
    with pytest.raises(InvalidInput):
        schedule_ical(schedule, utc(2026, 3, 1), utc(2026, 3, 2), dtstamp=datetime(2026, 3, 1))
    with pytest.raises(InvalidInput):
        schedule_ical(schedule, utc(2026, 3, 1), utc(2028, 3, 2), dtstamp=STAMP)
    with pytest.raises(InvalidInput):
        schedule_ical(schedule, utc(2026, 3, 2), utc(2026, 3, 1), dtstamp=STAMP)
