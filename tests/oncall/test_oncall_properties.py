"""Property tests: the final schedule equals the layers cut by restrictions, stacked, with overrides on top.

The oracle below answers one instant at a time by walking turns from the rotation start and
checking windows directly, independently of the interval sweep in zhiban.oncall.schedule.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhiban.oncall import (
    DailyWindow,
    Layer,
    Override,
    Schedule,
    Shift,
    TurnUnit,
    WeeklyWindow,
    gaps,
    layer_shifts,
    shifts,
    who_is_on_call,
)
from zhiban.oncall.model import Restriction

# Zones with DST in both hemispheres, a 30-minute DST (Lord Howe) and a half-hour offset (Kolkata).
ZONES = ["America/New_York", "Europe/Berlin", "Asia/Shanghai", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
PEOPLE = ["ana", "bo", "cy", "dee"]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_MINUTES = 365 * 24 * 60
SETTINGS = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# DST changes in 2026: New York, Berlin, Lord Howe (half-hour steps); times of day around them.
DST_DAYS = [
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 4, 5),
    date(2026, 10, 4),
]
TRICKY_TIMES = [time(0), time(1), time(1, 30), time(1, 45), time(2), time(2, 15), time(2, 30), time(3), time(9)]
minutes_of_day = st.sampled_from(TRICKY_TIMES) | st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
weekdays = st.frozensets(st.integers(0, 6), min_size=1)
daily_windows = st.builds(DailyWindow, minutes_of_day, minutes_of_day, weekdays)
weekly_windows = st.builds(WeeklyWindow, st.integers(0, 6), minutes_of_day, st.integers(0, 6), minutes_of_day)


@st.composite
def layers(draw: st.DrawFn) -> Layer:
    unit = draw(st.sampled_from(list(TurnUnit)))
    length = draw(st.integers(1, 36) if unit is TurnUnit.HOUR else st.integers(1, 8))
    zone = draw(st.sampled_from(ZONES))
    # Rotations mostly start shortly before a DST change, at wall times near the jump; some anywhere.
    if draw(st.booleans()):
        day = draw(st.sampled_from(DST_DAYS)) - timedelta(days=draw(st.integers(0, 12)))
        wall = datetime.combine(day, draw(minutes_of_day))
    else:
        random_start = BASE + timedelta(minutes=draw(st.integers(0, YEAR_MINUTES)))
        wall = random_start.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    start = wall.replace(tzinfo=ZoneInfo(zone))
    end = draw(st.none() | st.integers(60, 40 * 24 * 60).map(lambda m: start + timedelta(minutes=m)))
    return Layer(
        name="layer",
        participants=tuple(draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4))),
        rotation_start=wall.replace(tzinfo=ZoneInfo(zone), fold=draw(st.integers(0, 1))),
        turn_length=length,
        turn_unit=unit,
        restrictions=tuple(draw(st.lists(daily_windows | weekly_windows, max_size=2))),
        zone=zone,
        end=end,
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, datetime, datetime]:
    chosen = draw(st.lists(layers(), min_size=1, max_size=3))
    earliest = min(layer.rotation_start for layer in chosen).astimezone(UTC)
    start = earliest + timedelta(minutes=draw(st.integers(-24 * 60, 20 * 24 * 60)))
    end = start + timedelta(minutes=draw(st.integers(1, 10 * 24 * 60)))
    overrides = []
    for _ in range(draw(st.integers(0, 5))):
        begin = start + timedelta(minutes=draw(st.integers(-600, 10 * 24 * 60)))
        overrides.append(
            Override(draw(st.sampled_from(PEOPLE)), begin, begin + timedelta(minutes=draw(st.integers(1, 3 * 24 * 60))))
        )
    schedule = Schedule("s", draw(st.sampled_from(ZONES)), tuple(chosen), tuple(overrides))
    return schedule, start, end


def to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    return wall.replace(tzinfo=zone).astimezone(UTC)


def in_window(window: Restriction, moment: datetime, zone: ZoneInfo) -> bool:
    local_day = moment.astimezone(zone).date()
    for back in range(9):
        day: date = local_day - timedelta(days=back)
        if isinstance(window, DailyWindow):
            if day.weekday() not in window.weekdays:
                continue
            begin = datetime.combine(day, window.start)
            finish = datetime.combine(day, window.end)
            if finish <= begin:
                finish += timedelta(days=1)
        else:
            if day.weekday() != window.start_weekday:
                continue
            begin = datetime.combine(day, window.start)
            finish = datetime.combine(day + timedelta(days=(window.end_weekday - window.start_weekday) % 7), window.end)
            if finish <= begin:
                finish += timedelta(days=7)
        if to_utc(begin, zone) <= moment < to_utc(finish, zone):
            return True
    return False


def layer_person(schedule: Schedule, layer: Layer, moment: datetime) -> str | None:
    zone = ZoneInfo(layer.zone or schedule.zone)
    if moment < layer.rotation_start or (layer.end is not None and moment >= layer.end):
        return None
    if layer.restrictions and not any(in_window(w, moment, zone) for w in layer.restrictions):
        return None
    anchor = layer.rotation_start.astimezone(zone).replace(tzinfo=None)
    step = timedelta(hours=layer.turn_length) if layer.turn_unit is TurnUnit.HOUR else timedelta(days=layer.turn_length)
    turn = 0
    while to_utc(anchor + (turn + 1) * step, zone) <= moment:
        turn += 1
    return layer.participants[turn % len(layer.participants)]


def oracle(schedule: Schedule, moment: datetime) -> str | None:
    for override in reversed(schedule.overrides):
        if override.start <= moment < override.end:
            return override.person_id
    for layer in reversed(schedule.layers):
        person = layer_person(schedule, layer, moment)
        if person is not None:
            return person
    return None


def covering(found: list[Shift], moment: datetime) -> str | None:
    hits = [s.person_id for s in found if s.start <= moment < s.end]
    assert len(hits) <= 1
    return hits[0] if hits else None


def union(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for begin, finish in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(finish, merged[-1][1]))
        else:
            merged.append((begin, finish))
    return merged


@SETTINGS
@given(cases())
def test_final_shifts_are_ordered_disjoint_merged_and_inside_the_window(
    case: tuple[Schedule, datetime, datetime],
) -> None:
    schedule, start, end = case
    found = shifts(schedule, start, end)
    for shift in found:
        assert start <= shift.start < shift.end <= end
    for before, after in itertools.pairwise(found):
        assert before.end <= after.start
        assert not (before.end == after.start and before.person_id == after.person_id)


@SETTINGS
@given(cases(), st.lists(st.floats(0, 1), min_size=5, max_size=15))
def test_final_shifts_match_the_oracle_at_every_boundary_and_random_instants(
    case: tuple[Schedule, datetime, datetime], fractions: list[float]
) -> None:
    schedule, start, end = case
    found = shifts(schedule, start, end)
    probes = [start + (end - start) * f for f in fractions]
    for index in range(len(schedule.layers)):
        for piece in layer_shifts(schedule, index, start, end):
            # Just before a handoff the wall clock may already read past it (DST jumps).
            probes += [piece.start, piece.start - timedelta(minutes=20), piece.start - timedelta(microseconds=1)]
    for shift in found:
        probes += [shift.start, shift.end - timedelta(microseconds=1), shift.start + (shift.end - shift.start) / 2]
    for moment in probes:
        if start <= moment < end:
            expected = oracle(schedule, moment)
            assert covering(found, moment) == expected, moment
            assert who_is_on_call(schedule, moment) == ([] if expected is None else [expected]), moment
            # A window that begins at the probe must find the turn in force there, too.
            assert covering(shifts(schedule, moment, moment + timedelta(seconds=1)), moment) == expected, moment


@SETTINGS
@given(cases())
def test_covered_time_is_exactly_the_layers_coverage_plus_overrides(case: tuple[Schedule, datetime, datetime]) -> None:
    schedule, start, end = case
    layered = [
        (s.start, s.end) for index in range(len(schedule.layers)) for s in layer_shifts(schedule, index, start, end)
    ]
    overridden = [(max(o.start, start), min(o.end, end)) for o in schedule.overrides if o.end > start and o.start < end]
    final = union([(s.start, s.end) for s in shifts(schedule, start, end)])
    assert final == union(layered + overridden)
    # gaps() is exactly the complement of the final shifts within the window.
    assert union(final + gaps(schedule, start, end)) == [(start, end)]
    for hole_start, hole_end in gaps(schedule, start, end):
        assert all(f_end <= hole_start or f_start >= hole_end for f_start, f_end in final)
