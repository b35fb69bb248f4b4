"""The final schedule: layer turns, cut to restriction windows, stacked, with overrides on top.

`shifts()` and `gaps()` compute exactly over a window. `who_is_on_call()` answers from a cache of
compiled chunks (sorted shift starts per 28-day span, searched with bisect) kept on the immutable
`Schedule` value, so a changed schedule — a new value — never sees stale answers.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from zhiban.core.errors import InvalidInput
from zhiban.oncall.model import Layer, Schedule, Shift, ShiftSource, require_aware, wall_to_utc

MAX_QUERY_SPAN = timedelta(days=800)
CHUNK_SECONDS = 28 * 86_400
MAX_CACHED_CHUNKS = 64  # per schedule: about five years of lookups

Interval = tuple[datetime, datetime]


def _window(start: datetime, end: datetime) -> Interval:
    begin = require_aware(start, "start")
    finish = require_aware(end, "end")
    if finish < begin:
        raise InvalidInput("end must not be before start")
    if finish - begin > MAX_QUERY_SPAN:
        raise InvalidInput(f"a schedule query spans at most {MAX_QUERY_SPAN.days} days")
    return begin, finish


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


@dataclass(frozen=True)
class _Rotation:
    """A layer's handoff arithmetic, bound to its zone."""

    layer: Layer
    zone: ZoneInfo

    @property
    def anchor_wall(self) -> datetime:
        return _wall(self.layer.rotation_start, self.zone)

    def handoff(self, turn_no: int) -> datetime:
        """When turn `turn_no` begins; turn 0 begins exactly at rotation_start."""
        if turn_no <= 0:
            return self.layer.rotation_start.astimezone(UTC)
        return wall_to_utc(self.anchor_wall + turn_no * self.layer.turn, self.zone)

    def turn_at(self, moment: datetime) -> int:
        """The number of the turn in force at `moment` (moment >= rotation_start)."""
        elapsed = _wall(moment, self.zone) - self.anchor_wall
        turn_no = max(0, elapsed // self.layer.turn)
        # The wall-clock estimate can be one off around DST jumps; settle it on UTC instants.
        while turn_no > 0 and self.handoff(turn_no) > moment:
            turn_no -= 1
        while self.handoff(turn_no + 1) <= moment:
            turn_no += 1
        return turn_no


def _layer_turns(
    schedule: Schedule, layer: Layer, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    """The layer's rotation turns clipped to [start, end), before restrictions."""
    rotation = _Rotation(layer, schedule.layer_zone(layer))
    low = max(start, layer.rotation_start.astimezone(UTC))
    high = min(end, layer.end.astimezone(UTC)) if layer.end is not None else end
    turns: list[tuple[datetime, datetime, str]] = []
    if low >= high:
        return turns
    turn_no = rotation.turn_at(low)
    begin = rotation.handoff(turn_no)
    while begin < high:
        finish = max(begin, rotation.handoff(turn_no + 1))
        piece_start, piece_end = max(begin, low), min(finish, high)
        if piece_start < piece_end:
            turns.append((piece_start, piece_end, layer.participants[turn_no % len(layer.participants)]))
        turn_no += 1
        begin = finish
    return turns


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for begin, finish in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            if finish > merged[-1][1]:
                merged[-1] = (merged[-1][0], finish)
        else:
            merged.append((begin, finish))
    return merged


def restriction_windows(schedule: Schedule, layer: Layer, start: datetime, end: datetime) -> list[Interval]:
    """The UTC spans in [start, end) where `layer`'s restrictions let it cover (all of it if none)."""
    start, end = _window(start, end)
    if not layer.restrictions:
        return [(start, end)] if start < end else []
    zone = schedule.layer_zone(layer)
    # A weekly window may have started up to a week before `start`.
    day = _wall(start, zone).date() - timedelta(days=8)
    last_day = _wall(end, zone).date() + timedelta(days=1)
    spans: list[Interval] = []
    while day <= last_day:
        for window in layer.restrictions:
            wall_span = window.spans_on(day)
            if wall_span is None:
                continue
            begin = max(wall_to_utc(wall_span[0], zone), start)
            finish = min(wall_to_utc(wall_span[1], zone), end)
            if begin < finish:
                spans.append((begin, finish))
        day += timedelta(days=1)
    return _union(spans)


def _intersect(
    turns: Sequence[tuple[datetime, datetime, str]], windows: Sequence[Interval]
) -> list[tuple[datetime, datetime, str]]:
    pieces: list[tuple[datetime, datetime, str]] = []
    i = j = 0
    while i < len(turns) and j < len(windows):
        begin = max(turns[i][0], windows[j][0])
        finish = min(turns[i][1], windows[j][1])
        if begin < finish:
            pieces.append((begin, finish, turns[i][2]))
        if turns[i][1] <= windows[j][1]:
            i += 1
        else:
            j += 1
    return pieces


def _layer_pieces(
    schedule: Schedule, index: int, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    layer = schedule.layers[index]
    return _intersect(_layer_turns(schedule, layer, start, end), restriction_windows(schedule, layer, start, end))


def _merge(pieces: Iterable[tuple[datetime, datetime, str, ShiftSource]]) -> list[Shift]:
    """Join adjacent pieces of the same person into one shift."""
    shifts: list[Shift] = []
    for begin, finish, person, source in pieces:
        last = shifts[-1] if shifts else None
        if last is not None and last.person_id == person and last.end == begin:
            sources = last.sources if source in last.sources else (*last.sources, source)
            shifts[-1] = Shift(person, last.start, finish, sources)
        else:
            shifts.append(Shift(person, begin, finish, (source,)))
    return shifts


def _paint(
    items: Sequence[tuple[datetime, datetime, int, str, ShiftSource]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str, ShiftSource]]:
    """Sweep [start, end): in each elementary span the item of highest priority wins."""
    starting: dict[datetime, list[int]] = {}
    bounds = {start, end}
    for number, (begin, finish, _priority, _person, _source) in enumerate(items):
        starting.setdefault(begin, []).append(number)
        bounds.add(begin)
        bounds.add(finish)
    ordered = sorted(bounds)
    active: list[tuple[int, int]] = []  # (-priority, item number): a max-heap on priority
    painted: list[tuple[datetime, datetime, str, ShiftSource]] = []
    for here, following in pairwise(ordered):
        for number in starting.get(here, ()):
            heapq.heappush(active, (-items[number][2], number))
        while active and items[active[0][1]][1] <= here:
            heapq.heappop(active)  # ended; items below the top are dropped when they surface
        if active:
            top = items[active[0][1]]
            painted.append((here, following, top[3], top[4]))
    return painted


def _final(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    items: list[tuple[datetime, datetime, int, str, ShiftSource]] = []
    for index in range(len(schedule.layers)):
        for begin, finish, person in _layer_pieces(schedule, index, start, end):
            items.append((begin, finish, index, person, ShiftSource("layer", index)))
    top = len(schedule.layers)
    for index, override in enumerate(schedule.overrides):
        begin = max(override.start.astimezone(UTC), start)
        finish = min(override.end.astimezone(UTC), end)
        if begin < finish:
            items.append((begin, finish, top + index, override.person_id, ShiftSource("override", index)))
    return _merge(_paint(items, start, end))


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final shifts in [start, end), clipped to it, adjacent turns of one person merged."""
    begin, finish = _window(start, end)
    return _final(schedule, begin, finish)


def layer_shifts(schedule: Schedule, layer_index: int, start: datetime, end: datetime) -> list[Shift]:
    """One layer's own shifts in [start, end) after its restrictions, ignoring other layers and overrides."""
    if not 0 <= layer_index < len(schedule.layers):
        raise InvalidInput(f"schedule {schedule.id!r} has no layer {layer_index}")
    begin, finish = _window(start, end)
    source = ShiftSource("layer", layer_index)
    return _merge((b, f, person, source) for b, f, person in _layer_pieces(schedule, layer_index, begin, finish))


def gaps(schedule: Schedule, start: datetime, end: datetime, min_length: timedelta = timedelta(0)) -> list[Interval]:
    """The spans in [start, end) when no one is on call and that last at least `min_length`."""
    begin, finish = _window(start, end)
    holes: list[Interval] = []
    cursor = begin
    for shift in _final(schedule, begin, finish):
        if shift.start > cursor:
            holes.append((cursor, shift.start))
        cursor = shift.end
    if cursor < finish:
        holes.append((cursor, finish))
    return [hole for hole in holes if hole[1] - hole[0] >= min_length]


def person_shifts(
    schedules: Sequence[Schedule], person_id: str, start: datetime, end: datetime
) -> list[tuple[Schedule, Shift]]:
    """One person's final shifts across several schedules, ordered by start."""
    begin, finish = _window(start, end)
    found = [(s, shift) for s in schedules for shift in _final(s, begin, finish) if shift.person_id == person_id]
    return sorted(found, key=lambda pair: (pair[1].start, pair[0].id))


@dataclass(frozen=True)
class _Chunk:
    """The final shifts of one cache span as parallel sorted arrays of POSIX seconds."""

    starts: list[float]
    ends: list[float]
    people: list[str]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _compile_chunk(schedule: Schedule, number: int) -> _Chunk:
    begin = _EPOCH + timedelta(seconds=number * CHUNK_SECONDS)
    final = _final(schedule, begin, begin + timedelta(seconds=CHUNK_SECONDS))
    return _Chunk(
        starts=[s.start.timestamp() for s in final],
        ends=[s.end.timestamp() for s in final],
        people=[s.person_id for s in final],
    )


def who_is_on_call(schedule: Schedule, moment: datetime) -> list[str]:
    """Who is on call at `moment` in the final schedule: one person, or nobody (an empty list)."""
    if moment.tzinfo is None:
        raise InvalidInput("moment must be timezone-aware")
    # POSIX seconds as floats keep microsecond order exactly up to the year 2106.
    seconds = moment.timestamp()
    number = int(seconds // CHUNK_SECONDS)
    cache = schedule._compiled
    chunk = cache.get(number)
    if chunk is None:
        chunk = _compile_chunk(schedule, number)
        if len(cache) >= MAX_CACHED_CHUNKS:
            # Drop the oldest chunk; another thread may be doing the same, which is harmless.
            with suppress(StopIteration, RuntimeError):
                cache.pop(next(iter(cache)), None)
        cache[number] = chunk
    index = bisect_right(chunk.starts, seconds) - 1
    if index >= 0 and seconds < chunk.ends[index]:
        return [chunk.people[index]]
    return []
