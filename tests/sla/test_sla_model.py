"""SLA clocks replayed from ticket events: pauses, cycles, re-targeting, breaches, warnings, previews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhiban.core.errors import InvalidInput, NotFound
from zhiban.sla import (
    DEMO_POLICY,
    PLANS,
    AgentReply,
    CalendarChanged,
    ClockState,
    CustomerMessage,
    Metric,
    PlanChanged,
    Policy,
    PolicyChanged,
    PolicyRule,
    Priority,
    PriorityChanged,
    SlaClock,
    Status,
    StatusChanged,
    Target,
    TicketCreated,
    TicketEvent,
    calendar_resolver,
    compute_clocks,
    due_preview,
)
from zhiban.sla.plans import resolve_demo_policy

SH = ZoneInfo("Asia/Shanghai")
CN = calendar_resolver("CN", "Asia/Shanghai")
M = timedelta(minutes=1)
H = timedelta(hours=1)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


def one(clocks: list[SlaClock], metric: Metric, cycle: int = 1) -> SlaClock:
    found = [c for c in clocks if c.metric is metric and c.cycle == cycle]
    assert len(found) == 1, clocks
    return found[0]


# A simple all-24x7 policy so the cycle rules are checked with easy arithmetic.
FLAT = Policy(
    "flat",
    (
        PolicyRule(
            plan=None,
            priority=None,
            targets=(
                Target(Metric.FIRST_RESPONSE, H, "24x7"),
                Target(Metric.NEXT_RESPONSE, 2 * H, "24x7"),
                Target(Metric.PERIODIC_UPDATE, 30 * M, "24x7"),
                Target(Metric.RESOLUTION, 8 * H, "24x7"),
            ),
        ),
    ),
)


def flat(name: str) -> Policy:
    return {"flat": FLAT, "default": DEMO_POLICY}[name]


T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def created(priority: Priority = Priority.P1, plan: str = "Any", policy: str = "flat") -> TicketCreated:
    return TicketCreated(at=T0, priority=priority, plan=plan, policy=policy)


# -- the story: Standard P2 at 17:50 on Friday 9 October 2026 -----------------------------------------------


def test_preview_of_the_acceptance_case() -> None:
    due = due_preview("Standard", Priority.P2, sh(2026, 10, 9, 17, 50), CN)
    assert due["first_response_due"] == sh(2026, 10, 10, 12, 50)
    assert due["resolution_due"] is None and due["periodic_update_due"] is None


def test_preview_enterprise_p1_on_a_national_day_night() -> None:
    due = due_preview("Enterprise", "P1", sh(2026, 10, 3, 3), CN)  # type: ignore[arg-type]
    assert due == {
        "first_response_due": sh(2026, 10, 3, 3, 15),
        "next_response_due": None,
        "periodic_update_due": sh(2026, 10, 3, 3, 30),
        "resolution_due": sh(2026, 10, 3, 7),
    }


def test_standard_p2_clock_runs_into_the_make_up_saturday() -> None:
    events: list[TicketEvent] = [TicketCreated(at=sh(2026, 10, 9, 17, 50), priority=Priority.P2, plan="Standard")]
    clock = one(compute_clocks(events, CN, sh(2026, 10, 10, 10)), Metric.FIRST_RESPONSE)
    assert clock.state is ClockState.ACTIVE
    assert clock.business_time_used == 70 * M  # 10 min on Friday, 1 h on Saturday
    assert clock.due_at == sh(2026, 10, 10, 12, 50)
    assert clock.warning_at == sh(2026, 10, 10, 11, 50)  # 3 h of 4 h: 10 min Fri + 2 h 50 Sat

    replied = one(
        compute_clocks([*events, AgentReply(sh(2026, 10, 10, 12))], CN, sh(2026, 10, 12)), Metric.FIRST_RESPONSE
    )
    assert (replied.state, replied.fulfilled_at, replied.due_at) == (
        ClockState.FULFILLED,
        sh(2026, 10, 10, 12),
        sh(2026, 10, 10, 12, 50),
    )
    late = one(compute_clocks(events, CN, sh(2026, 10, 10, 13)), Metric.FIRST_RESPONSE)
    assert (late.state, late.breached_at) == (ClockState.BREACHED, sh(2026, 10, 10, 12, 50))
    on_the_minute = one(
        compute_clocks([*events, AgentReply(sh(2026, 10, 10, 12, 50))], CN, sh(2026, 10, 11)), Metric.FIRST_RESPONSE
    )
    assert on_the_minute.state is ClockState.FULFILLED


def test_private_replies_do_not_count() -> None:
    events = [created(), AgentReply(T0 + 10 * M, public=False)]
    assert one(compute_clocks(events, CN, T0 + 20 * M, flat), Metric.FIRST_RESPONSE).state is ClockState.ACTIVE


# -- cycles, pauses, reopen, close ----------------------------------------------------------------------------


def test_pending_pauses_and_a_customer_reply_resumes() -> None:
    events = [
        created(),
        AgentReply(T0 + 10 * M),
        StatusChanged(T0 + 10 * M, Status.PENDING),
        CustomerMessage(T0 + 2 * H),
    ]
    paused = compute_clocks(events[:3], CN, T0 + H, flat)
    resolution = one(paused, Metric.RESOLUTION)
    assert (resolution.state, resolution.due_at, resolution.business_time_used) == (ClockState.PAUSED, None, 10 * M)
    assert one(paused, Metric.PERIODIC_UPDATE, 2).state is ClockState.PAUSED

    clocks = compute_clocks(events, CN, T0 + 2 * H + 5 * M, flat)
    assert one(clocks, Metric.FIRST_RESPONSE).fulfilled_at == T0 + 10 * M
    assert one(clocks, Metric.PERIODIC_UPDATE, 1).state is ClockState.FULFILLED
    assert one(clocks, Metric.PERIODIC_UPDATE, 2).due_at == T0 + 2 * H + 30 * M  # resumed with 0 used
    assert one(clocks, Metric.NEXT_RESPONSE).due_at == T0 + 4 * H
    assert one(clocks, Metric.RESOLUTION).due_at == T0 + 2 * H + (8 * H - 10 * M)


def test_on_hold_pauses_nothing() -> None:
    events = [created(), StatusChanged(T0 + H, Status.ON_HOLD)]
    clock = one(compute_clocks(events, CN, T0 + 3 * H, flat), Metric.RESOLUTION)
    assert (clock.state, clock.business_time_used) == (ClockState.ACTIVE, 3 * H)


def test_each_unanswered_customer_message_waits_in_one_cycle() -> None:
    events = [
        created(),
        AgentReply(T0 + 5 * M),
        CustomerMessage(T0 + H),
        CustomerMessage(T0 + 90 * M),  # still the same wait
        AgentReply(T0 + 2 * H),
        CustomerMessage(T0 + 3 * H),
    ]
    clocks = compute_clocks(events, CN, T0 + 6 * H, flat)
    first = one(clocks, Metric.NEXT_RESPONSE, 1)
    assert (first.state, first.started_at, first.fulfilled_at) == (ClockState.FULFILLED, T0 + H, T0 + 2 * H)
    second = one(clocks, Metric.NEXT_RESPONSE, 2)
    assert (second.state, second.breached_at) == (ClockState.BREACHED, T0 + 5 * H)
    assert not [c for c in clocks if c.metric is Metric.NEXT_RESPONSE and c.cycle == 3]


def test_periodic_updates_restart_at_each_public_reply() -> None:
    events = [created(), AgentReply(T0 + 20 * M), AgentReply(T0 + 45 * M)]
    clocks = compute_clocks(events, CN, T0 + 90 * M, flat)
    cycles = [c for c in clocks if c.metric is Metric.PERIODIC_UPDATE]
    assert [(c.cycle, c.state) for c in cycles] == [
        (1, ClockState.FULFILLED),
        (2, ClockState.FULFILLED),
        (3, ClockState.BREACHED),
    ]
    assert cycles[2].breached_at == T0 + 75 * M


def test_solve_then_customer_reply_resumes_resolution() -> None:
    events = [
        created(),
        AgentReply(T0 + 10 * M),
        StatusChanged(T0 + 2 * H, Status.SOLVED),
        CustomerMessage(T0 + 5 * H),
    ]
    solved = one(compute_clocks(events[:3], CN, T0 + 3 * H, flat), Metric.RESOLUTION)
    assert (solved.state, solved.fulfilled_at, solved.business_time_used) == (ClockState.FULFILLED, T0 + 2 * H, 2 * H)
    clocks = compute_clocks(events, CN, T0 + 6 * H, flat)
    resolution = one(clocks, Metric.RESOLUTION)
    assert (resolution.state, resolution.business_time_used) == (ClockState.ACTIVE, 3 * H)
    assert resolution.due_at == T0 + 5 * H + 6 * H
    assert one(clocks, Metric.NEXT_RESPONSE).started_at == T0 + 5 * H


def test_closed_ends_everything() -> None:
    closed_at = T0 + 20 * M  # before any target is due
    events = [created(), StatusChanged(closed_at, Status.CLOSED), CustomerMessage(T0 + 2 * H), AgentReply(T0 + 3 * H)]
    clocks = compute_clocks(events, CN, T0 + 30 * H, flat)
    assert all(c.state is ClockState.FULFILLED and c.fulfilled_at == closed_at for c in clocks), clocks
    assert {c.metric for c in clocks} == {Metric.FIRST_RESPONSE, Metric.PERIODIC_UPDATE, Metric.RESOLUTION}


# -- re-targeting -------------------------------------------------------------------------------------------------

MON_9 = sh(2026, 3, 2, 9)  # an ordinary Monday in Shanghai


def test_priority_change_keeps_business_time_used() -> None:
    events = [TicketCreated(MON_9, Priority.P4, "Standard"), PriorityChanged(MON_9 + 4 * H, Priority.P3)]
    clock = one(compute_clocks(events, CN, MON_9 + 5 * H), Metric.FIRST_RESPONSE)
    assert clock.target.duration == 8 * H
    assert (clock.business_time_used, clock.due_at) == (5 * H, sh(2026, 3, 2, 17))


def test_upgrade_past_the_new_target_breaches_and_never_unbreaches() -> None:
    events = [
        TicketCreated(MON_9, Priority.P3, "Standard"),
        PriorityChanged(MON_9 + 3 * H, Priority.P1),  # 3 h used > 1 h
        PriorityChanged(MON_9 + 3 * H + 30 * M, Priority.P3),
    ]
    clock = one(compute_clocks(events, CN, MON_9 + 4 * H), Metric.FIRST_RESPONSE)
    assert (clock.state, clock.breached_at) == (ClockState.BREACHED, MON_9 + 3 * H)


def test_upgrade_switches_to_the_24x7_calendar() -> None:
    fri_1750 = sh(2026, 3, 6, 17, 50)
    events = [TicketCreated(fri_1750, Priority.P2, "Standard"), PriorityChanged(sh(2026, 3, 6, 18, 30), Priority.P1)]
    clock = one(compute_clocks(events, CN, sh(2026, 3, 6, 18, 40)), Metric.FIRST_RESPONSE)
    # 10 business minutes before 18:00, none from 18:00 to 18:30, then 24x7: due 50 min after 18:30
    assert clock.due_at == sh(2026, 3, 6, 19, 20)
    assert clock.business_time_used == 20 * M


def test_plan_upgrade_adds_targets_from_the_moment_they_apply() -> None:
    start = sh(2026, 10, 3, 3)
    events = [
        TicketCreated(start, Priority.P1, "Standard"),
        AgentReply(start + 20 * M),
        PlanChanged(start + H, "Enterprise"),
    ]
    clocks = compute_clocks(events, CN, start + 70 * M)
    assert one(clocks, Metric.FIRST_RESPONSE).state is ClockState.FULFILLED
    assert one(clocks, Metric.PERIODIC_UPDATE).due_at == start + 90 * M
    assert one(clocks, Metric.RESOLUTION).due_at == start + 5 * H


def test_downgrade_drops_clocks_without_target() -> None:
    start = sh(2026, 10, 3, 3)
    events = [TicketCreated(start, Priority.P1, "Enterprise"), PriorityChanged(start + 5 * M, Priority.P2)]
    clocks = compute_clocks(events, CN, start + 10 * M)
    assert [c.metric for c in clocks] == [Metric.FIRST_RESPONSE]
    assert clocks[0].due_at == start + H


def test_calendar_change_applies_to_business_targets() -> None:
    def resolver(name: str):  # type: ignore[no-untyped-def]
        return calendar_resolver("US", "America/New_York")(name) if name == "us" else CN(name)

    events = [TicketCreated(MON_9, Priority.P3, "Standard"), CalendarChanged(MON_9 + H, "us")]
    clock = one(compute_clocks(events, resolver, MON_9 + H), Metric.FIRST_RESPONSE)
    # 1 h used in Shanghai; Monday 10:00 Shanghai is Sunday 21:00 in New York: 7 h more from Mon 09:00 NY
    assert clock.due_at == datetime(2026, 3, 2, 16, tzinfo=ZoneInfo("America/New_York"))


def test_policy_change_and_unknown_policy() -> None:
    events = [TicketCreated(MON_9, Priority.P3, "Standard"), PolicyChanged(MON_9 + H, "flat")]
    clock = one(compute_clocks(events, CN, MON_9 + H, flat), Metric.FIRST_RESPONSE)
    assert clock.due_at == MON_9 + H  # flat: 1 h on 24x7, 1 h already used
    with pytest.raises(NotFound):
        resolve_demo_policy("gold")


def test_first_matching_rule_wins_with_channel() -> None:
    phone = PolicyRule(
        plan="Basic", priority=None, channel="phone", targets=(Target(Metric.FIRST_RESPONSE, H, "24x7"),)
    )
    policy = Policy("p", (phone, *DEMO_POLICY.rules))
    assert policy.targets_for("Basic", Priority.P3, channel="phone")[Metric.FIRST_RESPONSE].duration == H
    assert policy.targets_for("Basic", Priority.P3, channel="email")[Metric.FIRST_RESPONSE].duration == 27 * H
    assert policy.targets_for("Unknown", Priority.P3) == {}


def test_warning_fraction_is_configurable() -> None:
    clock = one(compute_clocks([created()], CN, T0, flat, warning_fraction=0.5), Metric.FIRST_RESPONSE)
    assert clock.warning_at == T0 + 30 * M


def test_plans_data() -> None:
    assert {p for p, plan in PLANS.items() if plan.proactive_warning} == {"Premium", "Enterprise"}
    enterprise_p1 = {t.metric: (t.duration, t.calendar) for t in PLANS["Enterprise"].targets_for(Priority.P1)}
    assert enterprise_p1 == {
        Metric.FIRST_RESPONSE: (15 * M, "24x7"),
        Metric.PERIODIC_UPDATE: (30 * M, "24x7"),
        Metric.RESOLUTION: (4 * H, "24x7"),
    }
    assert [t.duration for p in Priority for t in PLANS["Basic"].targets_for(p)] == [8 * H, 9 * H, 27 * H, 27 * H]


@pytest.mark.parametrize(
    "events",
    [
        [],
        [CustomerMessage(T0)],
        [TicketCreated(datetime(2026, 1, 1), Priority.P1, "Basic")],  # naive
    ],
)
def test_bad_logs_are_refused(events: list[TicketEvent]) -> None:
    if not events:
        assert compute_clocks(events, CN, T0) == []
        return
    with pytest.raises(InvalidInput):
        compute_clocks(events, CN, T0)


def test_bad_enum_values_are_refused() -> None:
    with pytest.raises(InvalidInput):
        TicketCreated(T0, "P9", "Basic")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        StatusChanged(T0, "archived")  # type: ignore[arg-type]
    assert StatusChanged(T0, "pending").to is Status.PENDING  # type: ignore[arg-type]


# -- properties over random logs ------------------------------------------------------------------------------


def _event(kind: int, at: datetime, arg: int) -> TicketEvent:
    statuses = list(Status)
    priorities = list(Priority)
    plans = list(PLANS)
    match kind:
        case 0:
            return CustomerMessage(at, public=arg % 5 != 0)
        case 1:
            return AgentReply(at, public=arg % 4 != 0)
        case 2:
            return StatusChanged(at, statuses[arg % len(statuses)])
        case 3:
            return PriorityChanged(at, priorities[arg % 4])
        case _:
            return PlanChanged(at, plans[arg % 4])


logs = st.builds(
    lambda plan, prio, start, steps: [
        TicketCreated(start, Priority(prio), plan),
        *(
            _event(k, start + timedelta(minutes=sum(g for _, g, _ in steps[: i + 1])), a)
            for i, (k, _, a) in enumerate(steps)
        ),
    ],
    st.sampled_from(list(PLANS)),
    st.sampled_from([p.value for p in Priority]),
    st.sampled_from([sh(2026, 10, 9, 17, 50), sh(2026, 9, 30, 23), sh(2026, 3, 6, 12)]),
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 600), st.integers(0, 99)), max_size=25),
)


@settings(max_examples=150, deadline=None)
@given(logs, st.integers(0, 5000))
def test_replay_is_deterministic_and_consistent(events: list[TicketEvent], extra_minutes: int) -> None:
    now = max(e.at for e in events) + timedelta(minutes=extra_minutes)
    clocks = compute_clocks(events, CN, now)
    assert clocks == compute_clocks(list(events), CN, now)
    for c in clocks:
        assert c.business_time_used >= timedelta(0)
        if c.state is ClockState.PAUSED:
            assert c.due_at is None
        if c.state is ClockState.BREACHED:
            assert c.breached_at is not None and c.breached_at <= now
        if c.state is ClockState.ACTIVE:
            assert c.due_at is not None and c.due_at >= now
            assert c.warning_at is not None and c.warning_at <= c.due_at


@settings(max_examples=100, deadline=None)
@given(logs)
def test_a_breach_is_never_undone_by_later_events(events: list[TicketEvent]) -> None:
    for k in range(1, len(events)):
        before = compute_clocks(events[:k], CN, events[k - 1].at)
        after = {(c.metric, c.cycle): c for c in compute_clocks(events, CN, events[-1].at)}
        for c in before:
            if c.state is ClockState.BREACHED:
                assert after[(c.metric, c.cycle)].breached_at == c.breached_at
