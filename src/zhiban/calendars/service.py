"""Use cases of business calendars kept in the database: create, edit, import holidays, resolve a version.

Every edit writes a new immutable version; clocks name the version they count with ("cal:<id>:<n>"), so a
ticket's replay is the same tomorrow as today. Listeners (the SLA feature) hear of each edit and re-apply
it to open tickets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.calendars.countries import country_calendar
from zhiban.calendars.ical import holidays_from_ical
from zhiban.calendars.model import BusinessCalendar, parse_hours
from zhiban.calendars.store import (
    CalendarRow,
    CalendarVersionRow,
    all_calendars,
    calendar_by_name,
    version_row,
)
from zhiban.calendars.store import versions_after as store_versions_after
from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound

MAX_DATES = 2_000
MAX_NAME = 100
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WEEKLY: dict[str, str] = {str(d): "09:00-18:00" for d in range(5)} | {"5": "", "6": ""}
# Only dates near now matter for holidays; the package's data for these years is loaded once per calendar.
COUNTRY_YEARS = range(2020, 2041)

CalendarListener = Callable[[Session, Clock, str], None]
_listeners: list[CalendarListener] = []


def on_change(listener: CalendarListener) -> CalendarListener:
    """Call `listener(session, clock, calendar_id)` after each edit, in the editing transaction."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def calendar_ref(calendar_id: str, version: int) -> str:
    """The name a clock uses for one version of a calendar."""
    return f"cal:{calendar_id}:{version}"


def parse_ref(ref: str) -> tuple[str, int]:
    """(calendar id, version) of a "cal:<id>:<n>" name."""
    parts = ref.split(":")
    if len(parts) != 3 or parts[0] != "cal" or not parts[2].isdigit():
        raise InvalidInput(f"not a calendar version name: {ref!r}")
    return parts[1], int(parts[2])


# -- validation ---------------------------------------------------------------------------------------


def clean_weekly(weekly: Mapping[str, str] | None) -> dict[str, str]:
    """{"0".."6" or "mon".."sun": "09:00-18:00"} → {"0": ..., "6": ...}; missing days are closed."""
    if weekly is None:
        return dict(DEFAULT_WEEKLY)
    if len(weekly) > 7:
        raise InvalidInput("weekly hours have at most 7 days")
    out = {str(d): "" for d in range(7)}
    for key, hours in weekly.items():
        k = str(key).strip().lower()[:3]
        day = WEEKDAYS.index(k) if k in WEEKDAYS else int(k) if k.isdigit() and int(k) < 7 else None
        if day is None:
            raise InvalidInput(f"weekday must be 0..6 (Monday first) or mon..sun, not {key!r}")
        if not isinstance(hours, str) or len(hours) > 200:
            raise InvalidInput(f"hours of {key!r} must be text like 09:00-12:00,13:00-18:00")
        parse_hours(hours)
        out[str(day)] = ",".join(p.strip() for p in hours.split(",") if p.strip())
    return out


def clean_dates(values: Iterable[str | date], what: str) -> list[str]:
    """ISO dates, sorted and unique, at most MAX_DATES."""
    out: set[str] = set()
    for value in values:
        if isinstance(value, date):
            out.add(value.isoformat())
        else:
            try:
                out.add(date.fromisoformat(str(value).strip()).isoformat())
            except ValueError as exc:
                raise InvalidInput(f"{what}: not a date (YYYY-MM-DD): {str(value)[:40]!r}") from exc
        if len(out) > MAX_DATES:
            raise InvalidInput(f"{what}: at most {MAX_DATES} dates")
    return sorted(out)


def _clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"a calendar name has 1-{MAX_NAME} characters")
    return name


def _clean_country(country: str | None) -> str | None:
    if country is None or country == "":
        return None
    code = country.strip().upper()
    if not (2 <= len(code) <= 3 and code.isalpha()):
        raise InvalidInput(f"bad country code {country!r}")
    return code


# -- building -------------------------------------------------------------------------------------------


def spec_of(row: CalendarRow) -> dict[str, Any]:
    """The data that defines one version of a calendar."""
    return {
        "name": row.name,
        "tz": row.tz,
        "country": row.country,
        "weekly": dict(row.weekly),
        "holidays_added": list(row.holidays_added),
        "holidays_removed": list(row.holidays_removed),
        "workdays_added": list(row.workdays_added),
    }


def build_calendar(spec: Mapping[str, Any]) -> BusinessCalendar:
    """A BusinessCalendar from a stored spec (country holidays from the `holidays` package when a country is set)."""
    weekly = {int(d): h for d, h in spec["weekly"].items()}
    added = {date.fromisoformat(d) for d in spec["holidays_added"]}
    removed = {date.fromisoformat(d) for d in spec["holidays_removed"]}
    worked = {date.fromisoformat(d) for d in spec["workdays_added"]}
    if spec.get("country"):
        return country_calendar(
            spec["country"],
            spec["tz"],
            weekly_hours=weekly,
            years=COUNTRY_YEARS,
            additions=added - worked,
            removals=removed,
            extra_workdays=worked,
        )
    return BusinessCalendar.create(
        spec["tz"], weekly, holidays=added - removed - worked, workdays=worked, name=spec.get("name", "")
    )


class _VersionCache:
    """Built calendars by (id, version): versions never change, so entries never go stale."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[tuple[str, int], BusinessCalendar] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> BusinessCalendar | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, int], cal: BusinessCalendar) -> None:
        with self._lock:
            self._items[key] = cal
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_cache = _VersionCache()  # per process, and safe with several: versions never change


def calendar_version(session: Session, calendar_id: str, version: int) -> BusinessCalendar:
    """One version of a calendar, built once per process."""
    key = (calendar_id, version)
    cal = _cache.get(key)
    if cal is None:
        row = version_row(session, calendar_id, version)
        if row is None:
            raise NotFound(f"no version {version} of calendar {calendar_id}")
        cal = build_calendar(row.spec)
        _cache.put(key, cal)
    return cal


def resolve_ref(session: Session, ref: str) -> BusinessCalendar:
    """The calendar a "cal:<id>:<n>" name stands for."""
    calendar_id, version = parse_ref(ref)
    return calendar_version(session, calendar_id, version)


# -- use cases -----------------------------------------------------------------------------------------


def _save_version(session: Session, clock: Clock, row: CalendarRow) -> None:
    spec = spec_of(row)
    build_calendar(spec)  # refuse a spec that cannot be built, before anything is stored
    session.add(CalendarVersionRow(calendar_id=row.id, version=row.version, spec=spec, created_at=clock.now()))
    session.flush()


def create_calendar(
    session: Session,
    clock: Clock,
    *,
    name: str,
    tz: str,
    country: str | None = None,
    weekly: Mapping[str, str] | None = None,
    holidays_added: Iterable[str | date] = (),
    holidays_removed: Iterable[str | date] = (),
    workdays_added: Iterable[str | date] = (),
) -> CalendarRow:
    """Add a calendar (version 1)."""
    name = _clean_name(name)
    if calendar_by_name(session, name) is not None:
        raise Conflict(f"a calendar named {name!r} exists")
    now = clock.now()
    row = CalendarRow(
        name=name,
        tz=tz,
        country=_clean_country(country),
        weekly=clean_weekly(weekly),
        holidays_added=clean_dates(holidays_added, "holidays_added"),
        holidays_removed=clean_dates(holidays_removed, "holidays_removed"),
        workdays_added=clean_dates(workdays_added, "workdays_added"),
        version=1,
        created_at=now,
        updated_at=now,
    )
    _check_spec(row)
    session.add(row)
    session.flush()
    _save_version(session, clock, row)
    return row


def _check_spec(row: CalendarRow) -> None:
    try:
        build_calendar(spec_of(row))
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"bad calendar: {exc}") from exc


def get_calendar(session: Session, calendar_id: str) -> CalendarRow:
    row = session.get(CalendarRow, calendar_id)
    if row is None:
        row = calendar_by_name(session, calendar_id)
    if row is None:
        raise NotFound(f"no calendar {calendar_id!r}")
    return row


def find_calendar(session: Session, name: str) -> CalendarRow | None:
    """The calendar with this name, if any."""
    return calendar_by_name(session, name)


def versions_after(session: Session, calendar_id: str, version: int) -> list[CalendarVersionRow]:
    """The versions of a calendar newer than `version`, oldest first."""
    return store_versions_after(session, calendar_id, version)


def list_calendars(session: Session, limit: int = 200) -> list[CalendarRow]:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be 1-1000")
    return all_calendars(session, limit)


_UNSET: Any = object()


def update_calendar(
    session: Session,
    clock: Clock,
    calendar_id: str,
    *,
    name: str | None = None,
    tz: str | None = None,
    country: str | None = _UNSET,
    weekly: Mapping[str, str] | None = None,
    holidays_added: Iterable[str | date] | None = None,
    holidays_removed: Iterable[str | date] | None = None,
    workdays_added: Iterable[str | date] | None = None,
) -> CalendarRow:
    """Change a calendar (a new version) and re-apply it to the open tickets that count with it."""
    row = get_calendar(session, calendar_id)
    before = spec_of(row)
    if name is not None and _clean_name(name) != row.name:
        if calendar_by_name(session, _clean_name(name)) is not None:
            raise Conflict(f"a calendar named {name!r} exists")
        row.name = _clean_name(name)
    if tz is not None:
        row.tz = tz
    if country is not _UNSET:
        row.country = _clean_country(country)
    if weekly is not None:
        row.weekly = clean_weekly(weekly)
    if holidays_added is not None:
        row.holidays_added = clean_dates(holidays_added, "holidays_added")
    if holidays_removed is not None:
        row.holidays_removed = clean_dates(holidays_removed, "holidays_removed")
    if workdays_added is not None:
        row.workdays_added = clean_dates(workdays_added, "workdays_added")
    after = spec_of(row)
    if after == before:
        return row
    _check_spec(row)
    row.version += 1
    row.updated_at = clock.now()
    session.flush()
    _save_version(session, clock, row)
    if {k: v for k, v in after.items() if k != "name"} != {k: v for k, v in before.items() if k != "name"}:
        for listener in list(_listeners):
            listener(session, clock, row.id)
    return row


def edit_dates(
    session: Session,
    clock: Clock,
    calendar_id: str,
    *,
    add_holidays: Iterable[str | date] = (),
    work_on: Iterable[str | date] = (),
    forget: Iterable[str | date] = (),
) -> CalendarRow:
    """Close dates (holidays), open dates (make-up days or official holidays worked), or forget own edits."""
    row = get_calendar(session, calendar_id)
    closing = set(clean_dates(add_holidays, "holidays"))
    opening = set(clean_dates(work_on, "workdays"))
    dropped = set(clean_dates(forget, "dates"))
    if closing & opening:
        raise InvalidInput("a date cannot be closed and worked at once")
    added = (set(row.holidays_added) | closing) - opening - dropped
    removed = (set(row.holidays_removed) | opening) - closing - dropped
    worked = (set(row.workdays_added) | opening) - closing - dropped
    return update_calendar(
        session, clock, row.id, holidays_added=added, holidays_removed=removed, workdays_added=worked
    )


def import_ical(session: Session, clock: Clock, calendar_id: str, ics: bytes) -> tuple[CalendarRow, int]:
    """Close the all-day dates of an iCalendar feed; returns the calendar and how many dates were new."""
    days = holidays_from_ical(ics)
    row = get_calendar(session, calendar_id)
    new = {d.isoformat() for d in days} - set(row.holidays_added)
    if not new:
        return row, 0
    return edit_dates(session, clock, row.id, add_holidays=days), len(new)


def delete_calendar(session: Session, calendar_id: str) -> None:
    """Remove a calendar no ticket or organization counts with."""
    row = get_calendar(session, calendar_id)
    try:
        with session.begin_nested():
            session.delete(row)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"calendar {row.name!r} is in use by tickets or organizations") from exc


def ensure_country_calendar(session: Session, clock: Clock, country: str, tz: str) -> CalendarRow:
    """The calendar named "<country> <zone>" (Mon-Fri 09:00-18:00 with that country's holidays), made on first use."""
    code = _clean_country(country) or "CN"
    name = f"{code} {tz}"
    row = calendar_by_name(session, name)
    if row is None:
        try:
            # Two organizations' first tickets may make it at once: the unique name decides, the other reads it.
            with session.begin_nested():
                row = create_calendar(session, clock, name=name, tz=tz, country=code)
        except IntegrityError:
            row = calendar_by_name(session, name)
            if row is None:
                raise
    return row
