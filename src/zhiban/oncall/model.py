"""On-call schedules as values: layers of rotations, restriction windows, overrides, shifts.

Everything here is immutable and pure. A changed schedule is a new `Schedule` value, which is
also what keeps the lookup cache in `schedule.py` correct without explicit invalidation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zhiban.core.errors import InvalidInput

MAX_LAYERS = 20
MAX_PARTICIPANTS = 500
MAX_RESTRICTIONS = 50
MAX_OVERRIDES = 10_000
MAX_TURN_HOURS = 24 * 7  # longest hourly turn: one week of hours
MAX_TURN_DAYS = 366
MAX_ID_LENGTH = 200
ALL_WEEKDAYS: frozenset[int] = frozenset(range(7))  # 0 = Monday, as datetime.weekday()


@lru_cache(maxsize=1024)
def zone_of(name: str) -> ZoneInfo:
    """Return the IANA zone called `name`, or raise InvalidInput."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}") from exc


def wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Read a naive wall-clock time in `zone` and return the UTC instant.

    Ambiguous times (the repeated hour in autumn) are read as the first occurrence; times that
    do not exist (the skipped hour in spring) are read with the offset in force before the jump,
    so 02:30 on the spring-forward day in New York becomes 03:30 EDT (PEP 495, fold=0).
    """
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def require_aware(moment: datetime, what: str) -> datetime:
    """Return `moment` in UTC, refusing naive datetimes."""
    if not isinstance(moment, datetime):
        raise InvalidInput(f"{what} must be a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{what} must be timezone-aware")
    return moment.astimezone(UTC)


def _require_id(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{what} must be a non-empty string of at most {MAX_ID_LENGTH} characters")


def _require_weekdays(days: frozenset[int], what: str) -> None:
    if not days or not days <= ALL_WEEKDAYS:
        raise InvalidInput(f"{what} must be a non-empty set of weekdays 0 (Monday) to 6 (Sunday)")


class TurnUnit(StrEnum):
    """The unit of a rotation turn; both count wall-clock time in the layer's zone."""

    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True)
class DailyWindow:
    """A time-of-day window starting on the given weekdays, e.g. weekday nights 18:00–09:00.

    An `end` at or before `start` runs into the next day; `start == end` is a whole day.
    """

    start: time
    end: time
    weekdays: frozenset[int] = ALL_WEEKDAYS

    def __post_init__(self) -> None:
        if not isinstance(self.start, time) or not isinstance(self.end, time):
            raise InvalidInput("window start and end must be times of day")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidInput("window times are wall-clock times of the layer's zone: give them without a zone")
        object.__setattr__(self, "weekdays", frozenset(self.weekdays))
        _require_weekdays(self.weekdays, "window weekdays")

    def spans_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The naive wall-clock span of this window that starts on `day`, if it starts that day."""
        if day.weekday() not in self.weekdays:
            return None
        begin = datetime.combine(day, self.start)
        end = datetime.combine(day, self.end)
        if end <= begin:
            end += timedelta(days=1)
        return begin, end


@dataclass(frozen=True)
class WeeklyWindow:
    """A window across days of the week, e.g. Friday 18:00 to Monday 09:00.

    Equal start and end (same weekday and time) mean the whole week.
    """

    start_weekday: int
    start: time
    end_weekday: int
    end: time

    def __post_init__(self) -> None:
        for day in (self.start_weekday, self.end_weekday):
            if not isinstance(day, int) or not 0 <= day <= 6:
                raise InvalidInput("weekly window days must be 0 (Monday) to 6 (Sunday)")
        if not isinstance(self.start, time) or not isinstance(self.end, time):
            raise InvalidInput("window start and end must be times of day")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidInput("window times are wall-clock times of the layer's zone: give them without a zone")

    def spans_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The naive wall-clock span of this window that starts on `day`, if it starts that day."""
        if day.weekday() != self.start_weekday:
            return None
        begin = datetime.combine(day, self.start)
        days_ahead = (self.end_weekday - self.start_weekday) % 7
        end = datetime.combine(day + timedelta(days=days_ahead), self.end)
        if end <= begin:
            end += timedelta(days=7)
        return begin, end


Restriction = DailyWindow | WeeklyWindow


@dataclass(frozen=True)
class Layer:
    """One rotation: participants take turns of `turn_length` units from `rotation_start`.

    Handoffs happen at the wall-clock time of `rotation_start` in the layer's zone, so a daily
    09:00 handoff stays at 09:00 local across DST. With `restrictions`, the layer only covers
    the union of those windows (read in the layer's zone); outside them it has no one.
    `zone=None` means the schedule's zone.
    """

    name: str
    participants: tuple[str, ...]
    rotation_start: datetime
    turn_length: int = 1
    turn_unit: TurnUnit = TurnUnit.DAY
    restrictions: tuple[Restriction, ...] = ()
    zone: str | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        _require_id(self.name, "layer name")
        object.__setattr__(self, "participants", tuple(self.participants))
        object.__setattr__(self, "restrictions", tuple(self.restrictions))
        if not self.participants or len(self.participants) > MAX_PARTICIPANTS:
            raise InvalidInput(f"layer {self.name!r} needs 1 to {MAX_PARTICIPANTS} participants")
        for person in self.participants:
            _require_id(person, "participant id")
        require_aware(self.rotation_start, "rotation_start")
        try:
            unit = TurnUnit(self.turn_unit)
        except ValueError as exc:
            raise InvalidInput(f"turn_unit must be one of {[u.value for u in TurnUnit]}") from exc
        object.__setattr__(self, "turn_unit", unit)
        longest = MAX_TURN_HOURS if unit is TurnUnit.HOUR else MAX_TURN_DAYS
        if not isinstance(self.turn_length, int) or not 1 <= self.turn_length <= longest:
            raise InvalidInput(f"turn_length in {unit.value}s must be an integer from 1 to {longest}")
        if len(self.restrictions) > MAX_RESTRICTIONS:
            raise InvalidInput(f"a layer has at most {MAX_RESTRICTIONS} restriction windows")
        for window in self.restrictions:
            if not isinstance(window, DailyWindow | WeeklyWindow):
                raise InvalidInput("restrictions must be DailyWindow or WeeklyWindow values")
        if self.zone is not None:
            zone_of(self.zone)
        if self.end is not None and require_aware(self.end, "layer end") <= self.rotation_start:
            raise InvalidInput(f"layer {self.name!r} ends before it starts")

    @property
    def turn(self) -> timedelta:
        """The length of one turn, in wall-clock time."""
        return (
            timedelta(hours=self.turn_length) if self.turn_unit is TurnUnit.HOUR else timedelta(days=self.turn_length)
        )


@dataclass(frozen=True)
class Override:
    """Someone else is on call for [start, end); overrides win over every layer, later ones over earlier."""

    person_id: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_id(self.person_id, "override person id")
        if require_aware(self.end, "override end") <= require_aware(self.start, "override start"):
            raise InvalidInput("an override must end after it starts")


@dataclass(frozen=True)
class Schedule:
    """Layers from bottom (index 0) to top, plus overrides on top of all of them."""

    id: str
    zone: str
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()
    name: str = ""
    # Lookup cache filled by schedule.py; never part of equality or hashing.
    _compiled: dict[int, Any] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _require_id(self.id, "schedule id")
        zone_of(self.zone)
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        if len(self.layers) > MAX_LAYERS:
            raise InvalidInput(f"a schedule has at most {MAX_LAYERS} layers")
        if len(self.overrides) > MAX_OVERRIDES:
            raise InvalidInput(f"a schedule has at most {MAX_OVERRIDES} overrides")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise InvalidInput("layers must be Layer values")
        for override in self.overrides:
            if not isinstance(override, Override):
                raise InvalidInput("overrides must be Override values")

    def layer_zone(self, layer: Layer) -> ZoneInfo:
        """The zone in which `layer`'s handoffs and restrictions are read."""
        return zone_of(layer.zone or self.zone)


@dataclass(frozen=True)
class ShiftSource:
    """Where a piece of a final shift came from: a layer or an override (by index)."""

    kind: Literal["layer", "override"]
    index: int


@dataclass(frozen=True)
class Shift:
    """`person_id` is on call for [start, end) in the final schedule; `sources` in order of appearance."""

    person_id: str
    start: datetime
    end: datetime
    sources: tuple[ShiftSource, ...]

    @property
    def is_override(self) -> bool:
        """True when any part of this shift comes from an override."""
        return any(source.kind == "override" for source in self.sources)


def window_contains(window: Restriction, moment: datetime, zone: ZoneInfo) -> bool:
    """True when `moment` falls inside `window` read in `zone`."""
    instant = require_aware(moment, "moment")
    day = instant.astimezone(zone).date()
    for days_back in range(8):  # a weekly window can have begun up to seven days earlier
        span = window.spans_on(day - timedelta(days=days_back))
        if span is not None and wall_to_utc(span[0], zone) <= instant < wall_to_utc(span[1], zone):
            return True
    return False
