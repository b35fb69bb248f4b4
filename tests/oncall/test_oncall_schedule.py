"""Final schedules: rotations, DST-safe handoffs, restrictions, overrides, follow-the-sun layers, gaps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.oncall import (
    DailyWindow,
    Layer,
    Override,
    Schedule,
    ShiftSource,
    TurnUnit,
    WeeklyWindow,
    gaps,
    layer_shifts,
    person_shifts,
    shifts,
    who_is_on_call,
)
from zhiban.oncall.schedule import MAX_CACHED_CHUNKS

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS = frozenset(range(5))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def one_layer(zone: str, start: datetime, people: tuple[str, ...], **layer: Any) -> Schedule:
    return Schedule("s1", zone, (Layer("primary", people, start, **layer),))


def handoffs(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    return [shift.start for shift in shifts(schedule, start, end)][1:]


# --- rotations across DST -------------------------------------------------------------------------


def test_daily_handoff_stays_at_nine_local_across_berlin_spring_forward() -> None:
    # 2026-03-29 02:00 CET becomes 03:00 CEST: 09:00 is 08:00Z before and 07:00Z after.
    schedule = one_layer("Europe/Berlin", datetime(2026, 3, 27, 9, tzinfo=BERLIN), ("ana", "ben"))
    result = shifts(schedule, utc(2026, 3, 27, 8), utc(2026, 3, 31, 7))
    assert [s.start for s in result] == [
        utc(2026, 3, 27, 8),
        utc(2026, 3, 28, 8),
        utc(2026, 3, 29, 7),
        utc(2026, 3, 30, 7),
    ]
    assert [s.person_id for s in result] == ["ana", "ben", "ana", "ben"]
    assert result[1].end - result[1].start == timedelta(hours=23)


def test_daily_handoff_stays_at_nine_local_across_new_york_fall_back() -> None:
    # 2026-11-01 02:00 EDT becomes 01:00 EST: 09:00 is 13:00Z before and 14:00Z after; that day has 25 h.
    schedule = one_layer("America/New_York", datetime(2026, 10, 30, 9, tzinfo=NEW_YORK), ("ana", "ben", "cy"))
    assert handoffs(schedule, utc(2026, 10, 30, 13), utc(2026, 11, 3, 14)) == [
        utc(2026, 10, 31, 13),
        utc(2026, 11, 1, 14),
        utc(2026, 11, 2, 14),
    ]
    result = shifts(schedule, utc(2026, 10, 31, 13), utc(2026, 11, 1, 14))
    assert len(result) == 1 and result[0].end - result[0].start == timedelta(hours=25)


def test_weekly_handoff_on_monday_ten_local_across_new_york_spring_forward() -> None:
    # 2026-03-08 is the spring-forward Sunday; Monday 10:00 EST is 15:00Z, Monday 10:00 EDT 14:00Z.
    schedule = one_layer("America/New_York", datetime(2026, 3, 2, 10, tzinfo=NEW_YORK), ("ana", "ben"), turn_length=7)
    assert handoffs(schedule, utc(2026, 3, 2, 15), utc(2026, 3, 23, 14)) == [utc(2026, 3, 9, 14), utc(2026, 3, 16, 14)]
    assert who_is_on_call(schedule, utc(2026, 3, 9, 13, 59)) == ["ana"]
    assert who_is_on_call(schedule, utc(2026, 3, 9, 14)) == ["ben"]


def test_twelve_hour_turns_hand_off_at_nine_and_twenty_one_local_across_dst() -> None:
    schedule = one_layer(
        "Europe/Berlin", datetime(2026, 3, 28, 9, tzinfo=BERLIN), ("day", "night"), turn_length=12, turn_unit="hour"
    )
    # 28 Mar: 09:00 CET = 08Z, 21:00 CET = 20Z; 29 Mar: 09:00 CEST = 07Z, 21:00 CEST = 19Z.
    assert handoffs(schedule, utc(2026, 3, 28, 8), utc(2026, 3, 29, 20)) == [
        utc(2026, 3, 28, 20),
        utc(2026, 3, 29, 7),
        utc(2026, 3, 29, 19),
    ]
    assert [s.person_id for s in shifts(schedule, utc(2026, 3, 28, 8), utc(2026, 3, 29, 20))] == [
        "day",
        "night",
        "day",
        "night",
    ]


def test_three_day_turns_cycle_through_participants_in_order() -> None:
    schedule = one_layer("UTC", utc(2026, 1, 1, 0), ("a", "b", "c"), turn_length=3)
    assert who_is_on_call(schedule, utc(2026, 1, 3, 23)) == ["a"]
    assert who_is_on_call(schedule, utc(2026, 1, 4, 0)) == ["b"]
    assert who_is_on_call(schedule, utc(2026, 1, 10, 0)) == ["a"]  # turn 3 wraps to the first
    assert who_is_on_call(schedule, utc(2025, 12, 31, 23)) == []  # before the rotation starts


def test_hourly_turns_across_the_skipped_hour_keep_real_hours_elsewhere() -> None:
    schedule = one_layer(
        "America/New_York", datetime(2026, 3, 8, 0, tzinfo=NEW_YORK), ("a", "b"), turn_length=1, turn_unit="hour"
    )
    # Wall clock 00:00 = 05Z, 01:00 = 06Z; 02:00 does not exist (read in EST: 07Z); 03:00 EDT is 07Z too.
    result = shifts(schedule, utc(2026, 3, 8, 5), utc(2026, 3, 8, 9))
    # The 02:00 turn ("a") has no length, so "b" serves the 01:00 and 03:00 turns back to back.
    assert [(s.start, s.person_id) for s in result] == [
        (utc(2026, 3, 8, 5), "a"),
        (utc(2026, 3, 8, 6), "b"),
        (utc(2026, 3, 8, 8), "a"),
    ]
    assert result[1].end == utc(2026, 3, 8, 8)


def test_handoff_at_a_skipped_wall_time_uses_the_offset_before_the_jump() -> None:
    schedule = one_layer("America/New_York", datetime(2026, 3, 7, 2, 30, tzinfo=NEW_YORK), ("a", "b"))
    # 02:30 on 8 March does not exist: read in EST it is 07:30Z (03:30 EDT); on 9 March 02:30 EDT is 06:30Z.
    assert handoffs(schedule, utc(2026, 3, 7, 7, 30), utc(2026, 3, 10)) == [
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 9, 6, 30),
    ]


def test_handoff_at_a_repeated_wall_time_uses_the_first_occurrence() -> None:
    schedule = one_layer("America/New_York", datetime(2026, 10, 31, 1, 30, tzinfo=NEW_YORK), ("a", "b"))
    # 01:30 on 1 November happens twice: first in EDT (05:30Z), then in EST (06:30Z).
    assert handoffs(schedule, utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 12)) == [utc(2026, 11, 1, 5, 30)]


def test_a_window_starting_between_the_jump_and_a_late_handoff_finds_the_old_turn() -> None:
    schedule = one_layer("America/New_York", datetime(2026, 3, 7, 2, 30, tzinfo=NEW_YORK), ("a", "b"))
    # 07:10Z on 8 March reads 03:10 EDT, past 02:30 on the wall, yet the handoff comes only at 07:30Z.
    assert [(s.person_id, s.end) for s in shifts(schedule, utc(2026, 3, 8, 7, 10), utc(2026, 3, 8, 8))] == [
        ("a", utc(2026, 3, 8, 7, 30)),
        ("b", utc(2026, 3, 8, 8)),
    ]


def test_a_window_starting_in_the_repeated_hour_finds_the_new_turn() -> None:
    schedule = one_layer("America/New_York", datetime(2026, 10, 31, 1, 30, tzinfo=NEW_YORK), ("a", "b"))
    # 06:10Z on 1 November reads 01:10 EST, before 01:30 on the wall, yet "b" took over at 05:30Z.
    assert [s.person_id for s in shifts(schedule, utc(2026, 11, 1, 6, 10), utc(2026, 11, 1, 7))] == ["b"]
    assert who_is_on_call(schedule, utc(2026, 11, 1, 6, 10)) == ["b"]


# --- restrictions ---------------------------------------------------------------------------------


def test_weekday_nights_restriction_covers_friday_night_into_saturday_only() -> None:
    schedule = one_layer(
        "Asia/Shanghai",
        datetime(2026, 6, 1, 9, tzinfo=SHANGHAI),
        ("nina",),
        turn_length=7,
        restrictions=(DailyWindow(time(18), time(9), WEEKDAYS),),
    )

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 6, day, hour, minute, tzinfo=SHANGHAI)

    assert who_is_on_call(schedule, at(5, 23)) == ["nina"]  # Friday night
    assert who_is_on_call(schedule, at(6, 8, 59)) == ["nina"]  # Saturday morning, Friday's window
    assert who_is_on_call(schedule, at(6, 9)) == []
    assert who_is_on_call(schedule, at(6, 20)) == []  # Saturday night is not a weekday night
    assert who_is_on_call(schedule, at(8, 7)) == []  # nor Sunday's
    assert who_is_on_call(schedule, at(8, 12)) == []  # Monday daytime
    assert who_is_on_call(schedule, at(8, 18)) == ["nina"]
    assert gaps(schedule, at(5, 12), at(8, 20)) == [(at(5, 12), at(5, 18)), (at(6, 9), at(8, 18))]


def test_night_window_across_berlin_spring_forward_lasts_fourteen_hours() -> None:
    schedule = one_layer(
        "Europe/Berlin",
        datetime(2026, 3, 1, 9, tzinfo=BERLIN),
        ("nina",),
        restrictions=(DailyWindow(time(18), time(9)),),
    )
    night = [s for s in shifts(schedule, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))]
    assert [(s.start, s.end) for s in night] == [(utc(2026, 3, 28, 17), utc(2026, 3, 29, 7))]


def test_weekly_window_friday_evening_to_monday_morning() -> None:
    schedule = one_layer(
        "Europe/Berlin",
        datetime(2026, 1, 5, 9, tzinfo=BERLIN),
        ("wes",),
        turn_length=7,
        restrictions=(WeeklyWindow(4, time(18), 0, time(9)),),
    )
    # Friday 9 January 2026 18:00 CET = 17:00Z to Monday 12 January 09:00 CET = 08:00Z.
    assert [(s.start, s.end) for s in shifts(schedule, utc(2026, 1, 8), utc(2026, 1, 14))] == [
        (utc(2026, 1, 9, 17), utc(2026, 1, 12, 8))
    ]


def test_restricted_layer_keeps_its_own_rotation_behind_the_windows() -> None:
    # Daily turns a, b, c; covered only 09:00–12:00. The turn order does not pause outside the window.
    schedule = one_layer("UTC", utc(2026, 1, 1), ("a", "b", "c"), restrictions=(DailyWindow(time(9), time(12)),))
    result = shifts(schedule, utc(2026, 1, 1), utc(2026, 1, 4))
    assert [(s.person_id, s.start, s.end) for s in result] == [
        ("a", utc(2026, 1, 1, 9), utc(2026, 1, 1, 12)),
        ("b", utc(2026, 1, 2, 9), utc(2026, 1, 2, 12)),
        ("c", utc(2026, 1, 3, 9), utc(2026, 1, 3, 12)),
    ]


# --- layers and overrides -------------------------------------------------------------------------


def follow_the_sun() -> Schedule:
    office = DailyWindow(time(9), time(17), WEEKDAYS)
    start = datetime(2026, 1, 5, 9)
    return Schedule(
        "fts",
        "UTC",
        (
            Layer("apac", ("li", "wang"), start.replace(tzinfo=SHANGHAI), restrictions=(office,), zone="Asia/Shanghai"),
            Layer("emea", ("eva", "max"), start.replace(tzinfo=BERLIN), restrictions=(office,), zone="Europe/Berlin"),
            Layer(
                "amer", ("joe", "sue"), start.replace(tzinfo=NEW_YORK), restrictions=(office,), zone="America/New_York"
            ),
        ),
    )


def test_follow_the_sun_later_layers_win_where_they_have_someone() -> None:
    schedule = follow_the_sun()
    # Wednesday 14 January: Shanghai 09–17 = 01–09Z, Berlin CET 09–17 = 08–16Z, New York EST 09–17 = 14–22Z.
    result = shifts(schedule, utc(2026, 1, 14), utc(2026, 1, 15))
    assert [(s.start.hour, s.end.hour, s.sources[0].index) for s in result] == [(1, 8, 0), (8, 14, 1), (14, 22, 2)]
    assert gaps(schedule, utc(2026, 1, 14), utc(2026, 1, 15)) == [
        (utc(2026, 1, 14), utc(2026, 1, 14, 1)),
        (utc(2026, 1, 14, 22), utc(2026, 1, 15)),
    ]


def test_follow_the_sun_while_only_new_york_has_changed_clocks() -> None:
    schedule = follow_the_sun()
    # Wednesday 18 March: New York on EDT (09–17 = 13–21Z), Berlin still on CET (08–16Z).
    result = shifts(schedule, utc(2026, 3, 18), utc(2026, 3, 19))
    assert [(s.start.hour, s.end.hour, s.sources[0].index) for s in result] == [(1, 8, 0), (8, 13, 1), (13, 21, 2)]
    # Saturday: nobody, all day.
    assert gaps(schedule, utc(2026, 3, 21), utc(2026, 3, 22)) == [(utc(2026, 3, 21), utc(2026, 3, 22))]


def test_override_takes_part_of_a_shift_and_the_turn_resumes_after() -> None:
    base = one_layer("UTC", utc(2026, 1, 1), ("ana",))
    schedule = dataclasses.replace(base, overrides=(Override("bo", utc(2026, 1, 1, 10), utc(2026, 1, 1, 12)),))
    result = shifts(schedule, utc(2026, 1, 1), utc(2026, 1, 2))
    assert [(s.person_id, s.start.hour, s.end.hour if s.end.day == 1 else 24) for s in result] == [
        ("ana", 0, 10),
        ("bo", 10, 12),
        ("ana", 12, 24),
    ]
    assert result[1].sources == (ShiftSource("override", 0),) and result[1].is_override


def test_later_override_wins_and_an_override_fills_a_gap() -> None:
    base = one_layer("UTC", utc(2026, 1, 1), ("ana",), restrictions=(DailyWindow(time(9), time(17)),))
    schedule = dataclasses.replace(
        base,
        overrides=(
            Override("bo", utc(2026, 1, 1, 16), utc(2026, 1, 1, 20)),
            Override("cy", utc(2026, 1, 1, 18), utc(2026, 1, 1, 19)),
        ),
    )
    assert [
        (s.person_id, s.start.hour, s.end.hour) for s in shifts(schedule, utc(2026, 1, 1, 8), utc(2026, 1, 1, 21))
    ] == [
        ("ana", 9, 16),
        ("bo", 16, 18),
        ("cy", 18, 19),
        ("bo", 19, 20),
    ]
    assert gaps(schedule, utc(2026, 1, 1, 8), utc(2026, 1, 1, 21)) == [
        (utc(2026, 1, 1, 8), utc(2026, 1, 1, 9)),
        (utc(2026, 1, 1, 20), utc(2026, 1, 1, 21)),
    ]


def test_adjacent_turns_of_one_person_merge_and_keep_their_sources() -> None:
    base = one_layer("UTC", utc(2026, 1, 1), ("ana",))
    schedule = dataclasses.replace(base, overrides=(Override("ana", utc(2026, 1, 1, 10), utc(2026, 1, 1, 12)),))
    result = shifts(schedule, utc(2026, 1, 1), utc(2026, 1, 4))
    assert len(result) == 1
    assert (result[0].start, result[0].end) == (utc(2026, 1, 1), utc(2026, 1, 4))
    assert result[0].sources == (ShiftSource("layer", 0), ShiftSource("override", 0))


def test_layer_shifts_ignore_layers_above_and_overrides() -> None:
    schedule = dataclasses.replace(
        follow_the_sun(), overrides=(Override("zoe", utc(2026, 1, 14, 9), utc(2026, 1, 14, 10)),)
    )
    emea = layer_shifts(schedule, 1, utc(2026, 1, 14), utc(2026, 1, 15))
    assert [(s.person_id, s.start, s.end) for s in emea] == [("max", utc(2026, 1, 14, 8), utc(2026, 1, 14, 16))]


def test_layer_end_stops_its_coverage() -> None:
    schedule = one_layer("UTC", utc(2026, 1, 1), ("a", "b"), end=utc(2026, 1, 3, 12))
    assert gaps(schedule, utc(2026, 1, 1), utc(2026, 1, 5)) == [(utc(2026, 1, 3, 12), utc(2026, 1, 5))]


def test_gaps_shorter_than_min_length_are_left_out() -> None:
    schedule = one_layer("UTC", utc(2026, 1, 1), ("a",), restrictions=(DailyWindow(time(0), time(23, 55)),))
    assert len(gaps(schedule, utc(2026, 1, 1), utc(2026, 1, 3))) == 2
    assert gaps(schedule, utc(2026, 1, 1), utc(2026, 1, 3), min_length=timedelta(minutes=10)) == []


def test_person_shifts_across_schedules_are_in_time_order() -> None:
    first = one_layer("UTC", utc(2026, 1, 1), ("ana", "bo"))
    second = Schedule("s2", "UTC", (Layer("l", ("bo", "ana"), utc(2026, 1, 1, 12)),))
    found = person_shifts([first, second], "ana", utc(2026, 1, 1), utc(2026, 1, 3))
    # s1: ana on 1 January; s2 (handoff at noon): ana from 2 January 12:00, clipped at the window's end.
    assert [(schedule.id, shift.start, shift.end) for schedule, shift in found] == [
        ("s1", utc(2026, 1, 1), utc(2026, 1, 2)),
        ("s2", utc(2026, 1, 2, 12), utc(2026, 1, 3)),
    ]


def test_a_changed_schedule_is_never_answered_from_the_old_cache() -> None:
    schedule = one_layer("UTC", utc(2026, 1, 1), ("ana",))
    assert who_is_on_call(schedule, utc(2026, 2, 1, 12)) == ["ana"]
    changed = dataclasses.replace(schedule, overrides=(Override("bo", utc(2026, 2, 1), utc(2026, 2, 2)),))
    assert who_is_on_call(changed, utc(2026, 2, 1, 12)) == ["bo"]
    assert who_is_on_call(schedule, utc(2026, 2, 1, 12)) == ["ana"]


def test_who_is_on_call_at_a_chunk_boundary_and_far_from_now() -> None:
    schedule = one_layer("UTC", utc(2000, 1, 1), ("a", "b"))
    boundary = datetime.fromtimestamp(28 * 86_400 * 700, tz=UTC)  # an exact cache-chunk edge
    expected_before = "ab"[((boundary - timedelta(microseconds=1)) - utc(2000, 1, 1)).days % 2]
    expected_at = "ab"[(boundary - utc(2000, 1, 1)).days % 2]
    assert who_is_on_call(schedule, boundary - timedelta(microseconds=1)) == [expected_before]
    assert who_is_on_call(schedule, boundary) == [expected_at]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Layer("l", (), utc(2026, 1, 1)),
        lambda: Layer("l", ("a",), datetime(2026, 1, 1)),
        lambda: Layer("l", ("a",), utc(2026, 1, 1), turn_length=0),
        lambda: Layer("l", ("a",), utc(2026, 1, 1), turn_unit="minute"),  # type: ignore[arg-type]
        lambda: Layer("l", ("a",), utc(2026, 1, 1), zone="Mars/Olympus"),
        lambda: Layer("l", ("a",), utc(2026, 1, 1), end=utc(2025, 1, 1)),
        lambda: Override("a", utc(2026, 1, 2), utc(2026, 1, 1)),
        lambda: DailyWindow(time(9), time(17), frozenset({7})),
        lambda: WeeklyWindow(7, time(9), 0, time(9)),
        lambda: Schedule("s", "Nowhere/Land", ()),
    ],
)
def test_bad_schedules_are_refused(build: object) -> None:
    with pytest.raises(InvalidInput):
        build()  # type: ignore[operator]


def test_bad_queries_are_refused() -> None:
    schedule = one_layer("UTC", utc(2026, 1, 1), ("a",), turn_unit=TurnUnit.HOUR)
    with pytest.raises(InvalidInput):
        who_is_on_call(schedule, datetime(2026, 1, 1))
    with pytest.raises(InvalidInput):
        shifts(schedule, utc(2026, 1, 1), utc(2029, 1, 1))
    with pytest.raises(InvalidInput):
        gaps(schedule, utc(2026, 1, 2), utc(2026, 1, 1))


def test_lookup_cache_stays_bounded_and_correct_over_many_years() -> None:
    schedule = one_layer("UTC", utc(2020, 1, 1), ("a", "b"))
    for year in range(2020, 2030):
        for month in range(1, 13):
            moment = utc(year, month, 15, 12)
            assert who_is_on_call(schedule, moment) == ["ab"[(moment - utc(2020, 1, 1)).days % 2]]
    assert len(schedule._compiled) <= MAX_CACHED_CHUNKS
