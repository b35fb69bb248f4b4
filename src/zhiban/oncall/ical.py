"""iCalendar feeds of final on-call shifts, for a schedule or for one person across schedules."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event

from zhiban.core.errors import InvalidInput
from zhiban.oncall.model import Schedule, Shift, require_aware
from zhiban.oncall.schedule import shifts

MAX_FEED_SPAN = timedelta(days=366)
# Shifts are computed this far beyond the feed's window so that a shift crossing its edge keeps
# its real start, and with it its UID, while the window slides from one export to the next.
EDGE_PADDING = timedelta(days=31)
PRODID = "-//zhiban//on-call//EN"


def shift_uid(schedule_id: str, shift: Shift) -> str:
    """A stable UID: the same schedule, person and start give the same event across exports."""
    key = "\x1f".join((schedule_id, shift.person_id, shift.start.astimezone(UTC).isoformat()))
    return hashlib.sha256(key.encode()).hexdigest()[:32] + "@zhiban"


def _feed_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    begin, finish = require_aware(start, "start"), require_aware(end, "end")
    if not begin < finish <= begin + MAX_FEED_SPAN:
        raise InvalidInput(f"a feed covers more than nothing and at most {MAX_FEED_SPAN.days} days")
    return begin, finish


def _touching(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    return [s for s in shifts(schedule, start - EDGE_PADDING, end + EDGE_PADDING) if s.end > start and s.start < end]


def _calendar(
    entries: Sequence[tuple[Schedule, Shift]], name: str, dtstamp: datetime, person_names: Mapping[str, str]
) -> bytes:
    stamp = require_aware(dtstamp, "dtstamp")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    for schedule, shift in entries:
        person = person_names.get(shift.person_id, shift.person_id)
        event = Event()
        event.add("uid", shift_uid(schedule.id, shift))
        event.add("dtstamp", stamp)
        event.add("dtstart", shift.start.astimezone(UTC))
        event.add("dtend", shift.end.astimezone(UTC))
        event.add("summary", f"On call: {person} ({schedule.name or schedule.id})")
        if shift.is_override:
            event.add("categories", ["override"])
        event.add("transp", "TRANSPARENT")  # being on call does not make anyone busy
        calendar.add_component(event)
    return calendar.to_ical()


def schedule_ical(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    *,
    dtstamp: datetime,
    person_names: Mapping[str, str] | None = None,
) -> bytes:
    """An iCalendar feed of the schedule's final shifts that touch [start, end)."""
    begin, finish = _feed_window(start, end)
    entries = [(schedule, shift) for shift in _touching(schedule, begin, finish)]
    return _calendar(entries, f"On call: {schedule.name or schedule.id}", dtstamp, person_names or {})


def person_ical(
    schedules: Sequence[Schedule],
    person_id: str,
    start: datetime,
    end: datetime,
    *,
    dtstamp: datetime,
    person_names: Mapping[str, str] | None = None,
) -> bytes:
    """An iCalendar feed of one person's final shifts across schedules that touch [start, end)."""
    begin, finish = _feed_window(start, end)
    entries = [
        (schedule, shift)
        for schedule in schedules
        for shift in _touching(schedule, begin, finish)
        if shift.person_id == person_id
    ]
    entries.sort(key=lambda pair: (pair[1].start, pair[0].id))
    names = person_names or {}
    return _calendar(entries, f"On call: {names.get(person_id, person_id)}", dtstamp, names)
