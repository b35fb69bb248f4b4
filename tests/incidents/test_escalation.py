"""Escalation plans: delays, repeats, real schedules as targets, round robin, conditions, urgency."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.incidents.escalation import (
    EscalationLevel,
    EscalationPolicy,
    EscalationStep,
    LevelCondition,
    ResolveTargets,
    Target,
    TargetKind,
    Urgency,
    next_step,
    next_time_when,
    plan_escalation,
)
from zhiban.oncall import DailyWindow, Layer, Override, Schedule, who_is_on_call

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEAMS = {"network": ["wu", "xu", "yu"]}


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def person(ref: str) -> Target:
    return Target(TargetKind.PERSON, ref)


def resolver(schedules: dict[str, Schedule]) -> ResolveTargets:
    def resolve(target: Target, at: datetime) -> Sequence[str]:
        if target.kind is TargetKind.PERSON:
            return [target.ref]
        if target.kind is TargetKind.SCHEDULE:
            return who_is_on_call(schedules[target.ref], at)
        return TEAMS[target.ref]

    return resolve


def network_schedule() -> Schedule:
    # Daily handoff at 09:00 Shanghai between the two network engineers.
    return Schedule("net", "Asia/Shanghai", (Layer("primary", ("lin", "zhou"), sh(2026, 1, 1, 9)),))


def support_hours(moment: datetime) -> bool:
    """Monday to Friday 09:00–18:00 in Shanghai."""
    local = moment.astimezone(SHANGHAI)
    return local.weekday() < 5 and time(9) <= local.time() < time(18)


def story_policy(repeats: int = 0) -> EscalationPolicy:
    return EscalationPolicy(
        "story",
        (
            EscalationLevel((Target(TargetKind.SCHEDULE, "net"),), 5),
            EscalationLevel((person("secondary"),), 5),
            EscalationLevel((person("duty-manager"),), 10),
        ),
        repeats=repeats,
    )


def test_story_pages_on_call_then_secondary_then_duty_manager_five_minutes_apart() -> None:
    # Saturday 3 January 2026, 03:00 Shanghai: "zhou" holds the turn from 2 January 09:00.
    steps = plan_escalation(story_policy(), sh(2026, 1, 3, 3), Urgency.HIGH, resolver({"net": network_schedule()}))
    assert [(s.step_no, s.level_index, s.repeat, s.due_at, s.targets) for s in steps] == [
        (0, 0, 0, sh(2026, 1, 3, 3), ("zhou",)),
        (1, 1, 0, sh(2026, 1, 3, 3, 5), ("secondary",)),
        (2, 2, 0, sh(2026, 1, 3, 3, 10), ("duty-manager",)),
    ]


def test_repeats_run_the_levels_again_after_the_last_delay() -> None:
    steps = plan_escalation(
        story_policy(repeats=2), sh(2026, 1, 3, 3), Urgency.HIGH, resolver({"net": network_schedule()})
    )
    assert len(steps) == 9
    assert [s.repeat for s in steps] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert steps[3].due_at == sh(2026, 1, 3, 3, 20)  # 5 + 5 + 10 minutes after the first page
    assert steps[-1].due_at == sh(2026, 1, 3, 3, 50)
    assert [s.step_no for s in steps] == list(range(9))


def test_schedule_targets_are_resolved_when_the_step_is_due() -> None:
    policy = EscalationPolicy("p", (EscalationLevel((Target(TargetKind.SCHEDULE, "net"),), 5),), repeats=1)
    steps = plan_escalation(policy, sh(2026, 1, 3, 8, 57), Urgency.HIGH, resolver({"net": network_schedule()}))
    # The 09:00 handoff falls between the two passes.
    assert [(s.due_at, s.targets) for s in steps] == [
        (sh(2026, 1, 3, 8, 57), ("zhou",)),
        (sh(2026, 1, 3, 9, 2), ("lin",)),
    ]


def test_next_step_sees_a_schedule_changed_after_the_first_page() -> None:
    schedule = network_schedule()
    first = next_step(story_policy(repeats=1), None, sh(2026, 1, 3, 3), Urgency.HIGH, resolver({"net": schedule}))
    assert first is not None and first.targets == ("zhou",)
    # A timer stored the step; meanwhile someone took over zhou's night. The repeat pages the stand-in.
    covered = dataclasses.replace(schedule, overrides=(Override("qian", sh(2026, 1, 3, 3, 1), sh(2026, 1, 3, 9)),))
    stored = EscalationStep(**dataclasses.asdict(first))
    resolve = resolver({"net": covered})
    step = stored
    for _ in range(3):
        following = next_step(story_policy(repeats=1), step, sh(2026, 1, 3, 3), Urgency.HIGH, resolve)
        assert following is not None
        step = following
    assert (step.repeat, step.level_index, step.due_at, step.targets) == (1, 0, sh(2026, 1, 3, 3, 20), ("qian",))


def test_next_step_after_the_last_step_is_none() -> None:
    resolve = resolver({"net": network_schedule()})
    steps = plan_escalation(story_policy(), sh(2026, 1, 3, 3), Urgency.HIGH, resolve)
    assert next_step(story_policy(), steps[-1], sh(2026, 1, 3, 3), Urgency.HIGH, resolve) is None


def test_team_round_robin_pages_one_member_per_pass_in_turn() -> None:
    policy = EscalationPolicy("p", (EscalationLevel((Target(TargetKind.TEAM, "network", round_robin=True),), 5),), 2)
    steps = plan_escalation(policy, sh(2026, 1, 5, 10), Urgency.HIGH, resolver({}), round_robin_offset=1)
    assert [s.targets for s in steps] == [("xu",), ("yu",), ("wu",)]


def test_team_without_round_robin_pages_everyone_once_even_if_named_twice() -> None:
    policy = EscalationPolicy(
        "p", (EscalationLevel((Target(TargetKind.TEAM, "network"), person("xu"), person("boss")), 5),)
    )
    (step,) = plan_escalation(policy, sh(2026, 1, 5, 10), Urgency.HIGH, resolver({}))
    assert step.targets == ("wu", "xu", "yu", "boss")


def test_level_for_weekday_nights_is_skipped_without_waiting_in_the_daytime() -> None:
    nights = LevelCondition("Asia/Shanghai", (DailyWindow(time(18), time(9), frozenset(range(5))),))
    policy = EscalationPolicy(
        "p",
        (
            EscalationLevel((person("night-owl"),), 15, condition=nights),
            EscalationLevel((person("day-lead"),), 5),
        ),
    )
    resolve = resolver({})
    night = plan_escalation(policy, sh(2026, 1, 5, 23), Urgency.HIGH, resolve)  # Monday 23:00
    assert [(s.targets, s.due_at) for s in night] == [
        (("night-owl",), sh(2026, 1, 5, 23)),
        (("day-lead",), sh(2026, 1, 5, 23, 15)),
    ]
    day = plan_escalation(policy, sh(2026, 1, 5, 11), Urgency.HIGH, resolve)
    assert [(s.step_no, s.level_index, s.targets, s.due_at) for s in day] == [(0, 1, ("day-lead",), sh(2026, 1, 5, 11))]
    weekend_night = plan_escalation(policy, sh(2026, 1, 10, 23), Urgency.HIGH, resolve)  # Saturday
    assert [s.level_index for s in weekend_night] == [1]


def test_business_hours_condition_uses_the_callable_given() -> None:
    after_hours_only = LevelCondition(business_hours=False)
    policy = EscalationPolicy(
        "p",
        (
            EscalationLevel((person("pager-duty-lead"),), 5, condition=after_hours_only),
            EscalationLevel((person("desk"),), 5),
        ),
    )
    office = plan_escalation(policy, sh(2026, 1, 5, 10), Urgency.HIGH, resolver({}), is_business_time=support_hours)
    evening = plan_escalation(policy, sh(2026, 1, 5, 20), Urgency.HIGH, resolver({}), is_business_time=support_hours)
    assert [s.targets for s in office] == [("desk",)]
    assert [s.targets for s in evening] == [("pager-duty-lead",), ("desk",)]
    with pytest.raises(InvalidInput):
        plan_escalation(policy, sh(2026, 1, 5, 20), Urgency.HIGH, resolver({}))


def test_levels_that_resolve_to_nobody_are_skipped() -> None:
    gap_schedule = Schedule(
        "net",
        "Asia/Shanghai",
        (Layer("days", ("lin",), sh(2026, 1, 1, 9), restrictions=(DailyWindow(time(9), time(18)),)),),
    )
    steps = plan_escalation(story_policy(), sh(2026, 1, 3, 3), Urgency.HIGH, resolver({"net": gap_schedule}))
    assert [(s.step_no, s.level_index, s.due_at) for s in steps] == [
        (0, 1, sh(2026, 1, 3, 3)),
        (1, 2, sh(2026, 1, 3, 3, 5)),
    ]
    nobody = EscalationPolicy("p", (EscalationLevel((Target(TargetKind.SCHEDULE, "net"),), 5),), repeats=3)
    assert plan_escalation(nobody, sh(2026, 1, 3, 3), Urgency.HIGH, resolver({"net": gap_schedule})) == []


def test_low_urgency_at_night_waits_for_support_hours_and_keeps_waiting_at_their_end() -> None:
    resolve = resolver({"net": network_schedule()})
    # Friday 9 January 17:58: the first page goes at once, the next would fall at 18:03, after hours;
    # it waits for Monday 09:00, and the duty manager comes 5 minutes after that page.
    steps = plan_escalation(story_policy(), sh(2026, 1, 9, 17, 58), Urgency.LOW, resolve, support_hours)
    assert [s.due_at for s in steps] == [sh(2026, 1, 9, 17, 58), sh(2026, 1, 12, 9), sh(2026, 1, 12, 9, 5)]
    # Saturday 03:00: the whole plan waits for Monday 09:00.
    weekend = plan_escalation(story_policy(), sh(2026, 1, 10, 3), Urgency.LOW, resolve, support_hours)
    assert weekend[0].due_at == sh(2026, 1, 12, 9)
    assert weekend[0].targets == ("zhou",)  # Monday 12 January 09:00 starts turn 11 of lin, zhou: zhou
    high = plan_escalation(story_policy(), sh(2026, 1, 10, 3), Urgency.HIGH, resolve, support_hours)
    assert high[0].due_at == sh(2026, 1, 10, 3)
    with pytest.raises(InvalidInput):
        plan_escalation(story_policy(), sh(2026, 1, 10, 3), Urgency.LOW, resolve)


def test_low_urgency_without_support_hours_in_the_horizon_plans_nothing() -> None:
    plan = plan_escalation(
        story_policy(), sh(2026, 1, 10, 3), Urgency.LOW, resolver({"net": network_schedule()}), lambda _: False
    )
    assert plan == []


def test_next_time_when_finds_the_boundary_to_the_second() -> None:
    opens = datetime(2026, 1, 12, 1, 0, 0, tzinfo=UTC)
    assert next_time_when(lambda t: t >= opens, datetime(2026, 1, 9, 22, 0, 17, 500_000, tzinfo=UTC)) == opens
    assert next_time_when(lambda t: t >= opens, opens + timedelta(seconds=3)) == opens + timedelta(seconds=3)
    assert next_time_when(lambda t: False, opens, horizon=timedelta(days=1)) is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: EscalationPolicy("p", ()),
        lambda: EscalationPolicy("p", (EscalationLevel((person("a"),), 5),), repeats=10),
        lambda: EscalationLevel((), 5),
        lambda: EscalationLevel((person("a"),), 0),
        lambda: Target("pager", "x"),  # type: ignore[arg-type]
        lambda: Target(TargetKind.PERSON, "x", round_robin=True),
        lambda: Target(TargetKind.PERSON, ""),
        lambda: LevelCondition("Atlantis/Capital"),
    ],
)
def test_bad_policies_are_refused(build: object) -> None:
    with pytest.raises(InvalidInput):
        build()  # type: ignore[operator]


def test_naive_trigger_time_and_unknown_urgency_are_refused() -> None:
    resolve = resolver({"net": network_schedule()})
    with pytest.raises(InvalidInput):
        plan_escalation(story_policy(), datetime(2026, 1, 3, 3), Urgency.HIGH, resolve)
    with pytest.raises(InvalidInput):
        plan_escalation(story_policy(), sh(2026, 1, 3, 3), "critical", resolve)  # type: ignore[arg-type]
    assert plan_escalation(story_policy(), sh(2026, 1, 3, 3), "high", resolve)[0].targets == ("zhou",)  # type: ignore[arg-type]
