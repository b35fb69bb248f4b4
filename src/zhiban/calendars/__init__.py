"""Business-hour calendars: weekly hours, holidays, make-up working days, time-zone-safe arithmetic."""

from zhiban.calendars.countries import country_calendar, official_days
from zhiban.calendars.ical import holidays_from_ical
from zhiban.calendars.model import MON_FRI_9_18, BusinessCalendar, always_open, parse_hours, weekly_hours

__all__ = [
    "MON_FRI_9_18",
    "BusinessCalendar",
    "always_open",
    "country_calendar",
    "holidays_from_ical",
    "official_days",
    "parse_hours",
    "weekly_hours",
]
