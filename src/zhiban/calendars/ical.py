"""Holidays from an iCalendar feed (e.g. a government or company holiday calendar)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import icalendar

from zhiban.core.errors import InvalidInput, TooLarge

MAX_ICS_BYTES = 2_000_000
MAX_EVENTS = 5_000
MAX_EVENT_DAYS = 366
MAX_DATES = 20_000


def holidays_from_ical(ics_bytes: bytes, max_bytes: int = MAX_ICS_BYTES) -> set[date]:
    """Dates covered by the all-day VEVENTs of a feed; timed and cancelled events are skipped.

    DTEND is exclusive (RFC 5545); without DTEND or DURATION an all-day event lasts one day.
    Recurrence rules (RRULE) are not expanded: only the first occurrence counts.
    """
    if len(ics_bytes) > max_bytes:
        raise TooLarge(f"iCalendar feed larger than {max_bytes} bytes")
    try:
        cal = icalendar.Calendar.from_ical(ics_bytes)
    except ValueError as exc:
        raise InvalidInput(f"not an iCalendar feed: {exc}") from exc
    days: set[date] = set()
    events = 0
    for event in cal.walk("VEVENT"):
        events += 1
        if events > MAX_EVENTS:
            raise TooLarge(f"more than {MAX_EVENTS} events in the feed")
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        start_prop = event.get("DTSTART")
        if start_prop is None:
            raise InvalidInput("a VEVENT has no DTSTART")
        start = start_prop.dt
        if isinstance(start, datetime) or not isinstance(start, date):
            continue  # a timed event is not a holiday
        end_prop = event.get("DTEND")
        if end_prop is not None:
            end = end_prop.dt
            if isinstance(end, datetime) or not isinstance(end, date):
                raise InvalidInput(f"all-day event starting {start} has a timed DTEND")
        elif event.get("DURATION") is not None:
            length = event.get("DURATION").dt
            if not isinstance(length, timedelta):
                raise InvalidInput(f"bad DURATION on event starting {start}")
            end = start + timedelta(days=length.days)
        else:
            end = start + timedelta(days=1)
        span = (end - start).days
        if span <= 0:
            end, span = start + timedelta(days=1), 1  # RFC 5545: an empty all-day range is that one day
        if span > MAX_EVENT_DAYS:
            raise InvalidInput(f"event starting {start} lasts {span} days (more than {MAX_EVENT_DAYS})")
        days.update(start + timedelta(days=k) for k in range(span))
        if len(days) > MAX_DATES:
            raise TooLarge(f"more than {MAX_DATES} holiday dates")
    return days
