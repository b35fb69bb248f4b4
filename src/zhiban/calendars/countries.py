"""Country calendars from the `holidays` package, with its official make-up working days (e.g. China's 调休)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from functools import lru_cache

import holidays as holidays_lib

from zhiban.calendars.model import MON_FRI_9_18, BusinessCalendar, DayHours, HoursSpec
from zhiban.calendars.model import weekly_hours as build_weekly_hours
from zhiban.core.errors import InvalidInput

# Holidays are only known for the years asked for; outside them a calendar has weekly hours only.
DEFAULT_YEARS = range(2015, 2041)
MAX_YEARS = 100


def country_calendar(
    country_code: str,
    tz: str,
    weekly_hours: Mapping[int, HoursSpec] = MON_FRI_9_18,
    years: Iterable[int] = DEFAULT_YEARS,
    additions: Iterable[date] = (),
    removals: Iterable[date] = (),
    extra_workdays: Iterable[date] = (),
) -> BusinessCalendar:
    """A business calendar for a country's public holidays and make-up working days, in zone `tz`.

    Make-up days (from the package, plus `extra_workdays`) are worked with the first open weekday's
    hours. `additions` are extra closed dates, `removals` dates the package lists that are worked anyway.
    """
    code = country_code.strip().upper() if isinstance(country_code, str) else ""
    if not (2 <= len(code) <= 3 and code.isalpha()):
        raise InvalidInput(f"bad country code {country_code!r}")
    year_list = tuple(sorted(set(years)))
    if not year_list or len(year_list) > MAX_YEARS or year_list[0] < 1971 or year_list[-1] > 2198:
        raise InvalidInput(f"years must be 1..{MAX_YEARS} years within 1971..2198")
    week = build_weekly_hours(weekly_hours)
    return _country_calendar(
        code, tz, week, year_list, frozenset(additions), frozenset(removals), frozenset(extra_workdays)
    )


def official_days(country_code: str, years: Iterable[int]) -> tuple[set[date], set[date]]:
    """(public holidays, weekend make-up working days) the `holidays` package knows for these years."""
    year_list = sorted(set(years))
    try:
        table = holidays_lib.country_holidays(country_code, years=year_list)
    except NotImplementedError as exc:
        raise InvalidInput(f"no holiday data for country {country_code!r}") from exc
    wanted = set(year_list)
    closed = {d for d in table if d.year in wanted}
    # `weekend_workdays` collects the weekend dates a substituted day off is paid back on (China's 调休,
    # also used for e.g. Russia, Vietnam); it may hold other years' dates, hence the filter.
    worked = {d for d in getattr(table, "weekend_workdays", set()) if d.year in wanted}
    return closed, worked - closed


@lru_cache(maxsize=256)
def _country_calendar(
    code: str,
    tz: str,
    week: tuple[DayHours, ...],
    years: tuple[int, ...],
    additions: frozenset[date],
    removals: frozenset[date],
    extra_workdays: frozenset[date],
) -> BusinessCalendar:
    closed, worked = official_days(code, years)
    closed = (closed | additions) - removals - extra_workdays
    worked = (worked | extra_workdays) - closed
    default = next((week[d] for d in range(5) if week[d]), ())
    return BusinessCalendar(
        tz=tz,
        weekly=week,
        holidays=frozenset(closed),
        workdays=tuple(sorted((d, default) for d in worked)),
        name=f"{code}:{tz}",
    )
