"""Business-hour calendars: weekly hours in a zone, holidays, make-up working days, and fast time arithmetic.

Semantics (the contract other features rely on):

- Business hours are local wall-clock intervals, half-open ``[start, end)``. An interval belongs to the
  local date it starts on; ``22:00-02:00`` crosses midnight and ends at 02:00 the next day; ``24:00`` is
  the end of the day. A holiday closes the intervals that start on that date.
- A local time is turned into an instant with zoneinfo rules: an ambiguous time (clocks fall back) is its
  first occurrence; a nonexistent time (clocks spring forward) maps forward to the moment the clocks jump.
  So an interval covers exactly the instants whose wall-clock reading lies inside it.
- Overlapping or touching intervals are merged, so a 7x24 calendar is never closed at midnight.
- ``add_business_time`` ends inside business hours: a target used up at 18:00 is due at 18:00, not at the
  next opening. Adding zero returns the start itself.
- ``business_time_between(a, b)`` is signed: negative when ``b < a`` (so it is additive for any order).
- Precision is one microsecond; results are aware datetimes in UTC.

Speed: each calendar lazily builds, per range of local years, sorted arrays of its open intervals in UTC
epoch microseconds plus the cumulative business time before each; a query is two bisections.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zhiban.core.errors import InvalidInput

DAY_SECONDS = 86_400
# Supported local years: wide enough for any ticket, small enough to bound the cached arrays.
MIN_YEAR = 1971
MAX_YEAR = 2199
MAX_INTERVALS_PER_DAY = 12
MAX_SPECIAL_DATES = 20_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_US = 1_000_000
_ZERO = timedelta(0)

# (start, end) in seconds after local midnight of the date the interval belongs to; end may pass 86400.
Interval = tuple[int, int]
DayHours = tuple[Interval, ...]
HoursSpec = str | Sequence[tuple[str, str]] | DayHours

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _parse_clock(text: str) -> int:
    m = _TIME_RE.match(text.strip())
    if not m:
        raise InvalidInput(f"bad time of day {text!r}: expected HH:MM or HH:MM:SS")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if mi > 59 or s > 59 or h > 24 or (h == 24 and (mi or s)):
        raise InvalidInput(f"bad time of day {text!r}")
    return h * 3600 + mi * 60 + s


def _interval(start_text: str, end_text: str) -> Interval:
    start, end = _parse_clock(start_text), _parse_clock(end_text)
    if start == DAY_SECONDS:
        raise InvalidInput("an interval cannot start at 24:00")
    if end == start:
        raise InvalidInput(f"empty interval {start_text}-{end_text}")
    if end < start:  # crosses midnight into the next day
        end += DAY_SECONDS
    return (start, end)


def parse_hours(spec: HoursSpec) -> DayHours:
    """Parse one day's hours: "09:00-12:00,13:30-18:00", [("09:00", "18:00")], or ready intervals; "" = closed."""
    if isinstance(spec, str):
        parts = [p for p in (x.strip() for x in spec.split(",")) if p]
        pairs: list[Interval] = []
        for part in parts:
            if "-" not in part:
                raise InvalidInput(f"bad interval {part!r}: expected HH:MM-HH:MM")
            a, b = part.split("-", 1)
            pairs.append(_interval(a, b))
    else:
        pairs = []
        for item in spec:
            first, second = item
            if isinstance(first, int) and isinstance(second, int):
                if not (0 <= first < DAY_SECONDS and first < second <= first + DAY_SECONDS):
                    raise InvalidInput(f"bad interval {item!r}")
                pairs.append((first, second))
            else:
                pairs.append(_interval(str(first), str(second)))
    if len(pairs) > MAX_INTERVALS_PER_DAY:
        raise InvalidInput(f"at most {MAX_INTERVALS_PER_DAY} intervals a day")
    return tuple(sorted(pairs))


def weekly_hours(spec: Mapping[int, HoursSpec]) -> tuple[DayHours, ...]:
    """Build the 7-day table (0 = Monday) from {weekday: hours}; missing weekdays are closed."""
    for day in spec:
        if not isinstance(day, int) or not 0 <= day <= 6:
            raise InvalidInput(f"weekday must be 0 (Monday) .. 6 (Sunday), not {day!r}")
    return tuple(parse_hours(spec.get(day, "")) for day in range(7))


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidInput(f"bad time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}") from exc


def _epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidInput("naive datetime: a time zone is required")
    return (moment - _EPOCH) // _ONE_US


def _local_to_epoch_s(local: datetime, zone: ZoneInfo) -> int:
    """Instant of a naive local wall-clock time: first occurrence if ambiguous, the jump if nonexistent."""
    first = local.replace(tzinfo=zone, fold=0)
    ts = int(first.timestamp())
    if datetime.fromtimestamp(ts, zone).replace(tzinfo=None) == local:
        return ts
    # In a gap: fold=1 reads it with the offset after the jump (earlier instant), fold=0 with the offset
    # before it (later instant). The jump is the first instant whose wall clock is past `local`.
    lo, hi = int(local.replace(tzinfo=zone, fold=1).timestamp()), ts
    if lo > hi:
        lo, hi = hi, lo
    while lo < hi:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) > local:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True, slots=True)
class _Table:
    """Open intervals in UTC epoch µs for local years first_year..last_year, exact on [lo, hi)."""

    first_year: int
    last_year: int
    lo: int
    hi: int
    starts: list[int]
    ends: list[int]
    cum: list[int]  # business µs before interval i
    cum_end: list[int]  # business µs up to the end of interval i


@dataclass(frozen=True)
class BusinessCalendar:
    """A zone, weekly hours, holidays and make-up working days; immutable and hashable, arrays cached."""

    tz: str
    weekly: tuple[DayHours, ...]
    holidays: frozenset[date] = frozenset()
    # Dates worked with their own hours (usually weekend make-up days, 调休), replacing the weekly hours.
    workdays: tuple[tuple[date, DayHours], ...] = ()
    name: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False, hash=False)
    _table: list[_Table] = field(default_factory=list, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _zone(self.tz)
        if len(self.weekly) != 7:
            raise InvalidInput("weekly hours need 7 days, Monday first")
        for day in self.weekly:
            parse_hours(day)  # validates ready-made tuples too
        if len(self.holidays) + len(self.workdays) > MAX_SPECIAL_DATES:
            raise InvalidInput(f"at most {MAX_SPECIAL_DATES} holidays and make-up days")
        seen: set[date] = set()
        for day_, hours in self.workdays:
            if day_ in seen:
                raise InvalidInput(f"make-up day {day_} listed twice")
            seen.add(day_)
            parse_hours(hours)
        clash = seen & self.holidays
        if clash:
            raise InvalidInput(f"dates both holiday and make-up working day: {sorted(clash)[:5]}")

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        tz: str,
        weekly: Mapping[int, HoursSpec],
        holidays: Iterable[date] = (),
        workdays: Iterable[date] | Mapping[date, HoursSpec] = (),
        name: str = "",
    ) -> BusinessCalendar:
        """Build a calendar; make-up days given as bare dates get the hours of the first open weekday."""
        week = weekly_hours(weekly)
        default = next((week[d] for d in range(5) if week[d]), ())
        if isinstance(workdays, Mapping):
            made = {d: parse_hours(h) for d, h in workdays.items()}
        else:
            made = {d: default for d in workdays}
        for d in list(made) + list(holidays):
            if not isinstance(d, date) or isinstance(d, datetime):
                raise InvalidInput(f"holidays and make-up days are dates, not {d!r}")
        return cls(
            tz=tz,
            weekly=week,
            holidays=frozenset(holidays),
            workdays=tuple(sorted(made.items())),
            name=name,
        )

    @cached_property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return _zone(self.tz)

    @cached_property
    def _workday_map(self) -> dict[date, DayHours]:
        return dict(self.workdays)

    @cached_property
    def always_open(self) -> bool:
        """True for 7x24: business time is elapsed time."""
        full = ((0, DAY_SECONDS),)
        return all(day == full for day in self.weekly) and not self.holidays and not self.workdays

    @cached_property
    def never_open(self) -> bool:
        """True when no hour is ever open (so nothing can ever fall due)."""
        return not any(self.weekly) and not any(h for _, h in self.workdays)

    def hours_on(self, day: date) -> DayHours:
        """The local intervals that start on `day`."""
        if day in self.holidays:
            return ()
        made = self._workday_map.get(day)
        if made is not None:
            return made
        return self.weekly[day.weekday()]

    def _build(self, first_year: int, last_year: int) -> _Table:
        zone = self.zone
        raw: list[tuple[int, int]] = []
        day = date(first_year, 1, 1) - timedelta(days=1)  # the day before may cross into the range
        last = date(last_year, 12, 31)
        one = timedelta(days=1)
        while day <= last:
            hours = self.hours_on(day)
            if hours:
                midnight = datetime.combine(day, time())
                for a, b in hours:
                    s = _local_to_epoch_s(midnight + timedelta(seconds=a), zone)
                    e = _local_to_epoch_s(midnight + timedelta(seconds=b), zone)
                    if e > s:
                        raw.append((s * _US, e * _US))
            day += one
        raw.sort()
        starts: list[int] = []
        ends: list[int] = []
        for s, e in raw:
            if ends and s <= ends[-1]:
                if e > ends[-1]:
                    ends[-1] = e
            else:
                starts.append(s)
                ends.append(e)
        cum: list[int] = []
        cum_end: list[int] = []
        total = 0
        for s, e in zip(starts, ends, strict=True):
            cum.append(total)
            total += e - s
            cum_end.append(total)
        lo = _local_to_epoch_s(datetime(first_year, 1, 1), zone) * _US
        hi = _local_to_epoch_s(datetime(last_year + 1, 1, 1), zone) * _US
        return _Table(first_year, last_year, lo, hi, starts, ends, cum, cum_end)

    def _year_of(self, us: int) -> int:
        seconds = us // _US
        if not (-62_000_000_000 < seconds < 253_000_000_000):
            raise InvalidInput("time out of the supported range")
        return (_EPOCH + timedelta(seconds=seconds)).astimezone(self.zone).year

    def _cover(self, us_from: int, us_to: int | None = None) -> _Table:
        """Return a table exact on [us_from, us_to]; rebuild it wider if needed."""
        tables = self._table
        table = tables[0] if tables else None
        if table is not None and table.lo <= us_from < table.hi and (us_to is None or us_to < table.hi):
            return table
        years = [self._year_of(us_from)]
        if us_to is not None:
            years.append(self._year_of(us_to))
        first, last = min(years), max(years) + 1  # one year ahead: most targets end within weeks
        if table is not None:
            first, last = min(first, table.first_year), max(last, table.last_year)
        if first < MIN_YEAR or last > MAX_YEAR:
            raise InvalidInput(f"calendars support years {MIN_YEAR}..{MAX_YEAR - 1}")
        with self._lock:
            table = self._build(first, last)
            tables[:] = [table]
        return table

    def _grow(self, table: _Table) -> _Table:
        if table.last_year + 1 >= MAX_YEAR:
            raise InvalidInput("business time runs past the supported calendar range")
        years = max(1, (table.last_year - table.first_year + 1) // 2)
        with self._lock:
            grown = self._build(table.first_year, min(MAX_YEAR - 1, table.last_year + years))
            self._table[:] = [grown]
        return grown

    # -- queries --------------------------------------------------------------------------------------

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant `duration` of business time after `start` (UTC); zero returns `start`."""
        if duration <= _ZERO:
            if duration == _ZERO:
                return _EPOCH + _ONE_US * _epoch_us(start)
            raise InvalidInput("business time to add must not be negative")
        s = _epoch_us(start)
        if self.always_open:
            return _EPOCH + _ONE_US * (s + duration // _ONE_US)
        if self.never_open:
            raise InvalidInput(f"calendar {self.name or self.tz!r} is never open")
        tables = self._table
        table = tables[0] if tables else None
        if table is None or not table.lo <= s < table.hi:
            table = self._cover(s)
        i = bisect_right(table.ends, s)
        target = duration // _ONE_US
        if i < len(table.starts):
            st = table.starts[i]
            target += table.cum[i] + (s - st if s > st else 0)
        else:
            target += table.cum_end[-1] if table.cum_end else 0
        while not table.cum_end or target > table.cum_end[-1]:
            # growing keeps the first year, so positions computed above stay valid
            table = self._grow(table)
        j = bisect_left(table.cum_end, target)
        return _EPOCH + _ONE_US * (table.starts[j] + target - table.cum[j])

    def _position(self, table: _Table, us: int) -> int:
        i = bisect_right(table.ends, us)
        if i < len(table.starts):
            st = table.starts[i]
            return table.cum[i] + (us - st if us > st else 0)
        return table.cum_end[-1] if table.cum_end else 0

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Business time from `a` to `b`; negative when `b` is before `a`."""
        ua, ub = _epoch_us(a), _epoch_us(b)
        if self.always_open:
            return _ONE_US * (ub - ua)
        lo, hi = (ua, ub) if ua <= ub else (ub, ua)
        tables = self._table
        table = tables[0] if tables else None
        if table is None or not (table.lo <= lo and hi < table.hi):
            table = self._cover(lo, hi)
        return _ONE_US * (self._position(table, ub) - self._position(table, ua))

    def is_open(self, moment: datetime) -> bool:
        """Whether `moment` falls inside business hours."""
        us = _epoch_us(moment)
        if self.always_open:
            return True
        if self.never_open:
            return False
        table = self._cover(us)
        i = bisect_right(table.ends, us)
        return i < len(table.starts) and table.starts[i] <= us

    def next_open(self, moment: datetime) -> datetime:
        """`moment` itself if open, else the next opening (UTC)."""
        us = _epoch_us(moment)
        if self.always_open:
            return _EPOCH + _ONE_US * us
        if self.never_open:
            raise InvalidInput(f"calendar {self.name or self.tz!r} is never open")
        table = self._cover(us)
        while True:
            i = bisect_right(table.ends, us)
            if i < len(table.starts):
                return _EPOCH + _ONE_US * max(us, table.starts[i])
            table = self._grow(table)


def always_open(tz: str = "UTC") -> BusinessCalendar:
    """The 7x24 calendar: every instant is business time."""
    return _always_open(tz)


_ALWAYS_CACHE: dict[str, BusinessCalendar] = {}


def _always_open(tz: str) -> BusinessCalendar:
    cal = _ALWAYS_CACHE.get(tz)
    if cal is None:
        cal = BusinessCalendar(tz=tz, weekly=(((0, DAY_SECONDS),),) * 7, name="24x7")
        if len(_ALWAYS_CACHE) < 1000:
            _ALWAYS_CACHE[tz] = cal
    return cal


MON_FRI_9_18: Mapping[int, HoursSpec] = dict.fromkeys(range(5), "09:00-18:00")
