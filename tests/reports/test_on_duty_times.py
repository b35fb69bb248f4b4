"""Proof in the reports: time from ticket to page, acknowledgement and first public reply in paging modes.

The evaluation data is built by hand. LiveCo (Enterprise, CN, Asia/Shanghai) is on `standby` from 1 October
01:30 UTC; ClassMate (Standard, US, America/New_York) is on `dedicated`. Times are minutes after filing.

| ticket | filed (UTC)      | local meaning                        | mode      | hours    | page | ack | reply |
| L0     | Thu  1 Oct 01:00 | Enterprise still a queue             | (queue)   | —        | —    | —   | —     |
| L1     | Thu  1 Oct 02:00 | 10:00 National Day                   | standby   | holiday  | 0    | 5   | 20    |
| L2     | Mon 12 Oct 14:00 | 22:00 P2                             | standby   | off      | 0    | 10  | 40    |
| L3     | Tue 13 Oct 02:00 | 10:00 P1                             | standby   | business | 0    | 2   | 8     |
| L4     | Tue 13 Oct 03:00 | 11:00 P3 (never pages)               | standby   | business | —    | —   | 30    |
| L5     | Wed 14 Oct 15:00 | 23:00 P1                             | standby   | off      | 0    | 1   | 3     |
| L6     | Thu 15 Oct 14:00 | 22:00 P4, raised to P1 after 20 min  | standby   | off      | 20   | 25  | 35    |
| C1     | Mon 12 Oct 14:00 | 10:00 Columbus Day (NY)              | dedicated | holiday  | 0    | 6   | 20    |
| C2     | Tue 13 Oct 14:00 | 10:00 NY: in hours, no page          | dedicated | business | —    | —   | 15    |
| C3     | Wed 14 Oct 03:00 | 23:00 NY the day before              | dedicated | off      | 0    | 3   | —     |
| D      | Fri 16 Oct 14:00 | a drill's P1                         | standby   | off      | 0    | 1   | 1     |

Enterprise goes back to `queue` on 20 October: the tickets filed under standby still count as standby.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.incidents.incident_kit import build as build_paging
from tests.tenancy import World, bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.drills.store import DrillRow
from zhiban.features import load_hooks
from zhiban.identity.service import principal_of
from zhiban.identity.store import PersonRow
from zhiban.incidents import service as incidents
from zhiban.reports import service as reports
from zhiban.reports.model import OnDutyFact
from zhiban.reports.on_duty import ALL, on_duty_times
from zhiban.reports.render import report_view
from zhiban.sla import service as sla
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel

MIN = timedelta(minutes=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_percentiles_by_mode_and_hours_from_plain_facts() -> None:
    t0 = utc(2026, 10, 12, 14)

    def fact(mode: str, hours: str, page: int | None, ack: int | None, reply: int | None) -> OnDutyFact:
        def at(m: int | None) -> datetime | None:
            return None if m is None else t0 + m * MIN

        return OnDutyFact(1, "org", mode, hours, t0, at(page), at(ack), at(reply))

    times = on_duty_times(
        [
            fact("standby", "out_of_hours", 0, 4, 10),
            fact("standby", "out_of_hours", 1, 9, 30),
            fact("standby", "out_of_hours", 2, 16, None),
            fact("standby", "out_of_hours", 3, None, 12),
            fact("dedicated", "business_hours", None, None, 45),
        ]
    )
    night = times.group("standby", "out_of_hours")
    assert night.tickets == 4
    # Nearest rank: p50 of [0, 1, 2, 3] is rank 2, p90 is rank 4; of [4, 9, 16]: ranks 2 and 3.
    assert (night.steps["page"].p50, night.steps["page"].p90, night.steps["page"].n) == (1 * MIN, 3 * MIN, 4)
    assert (night.steps["acknowledge"].p50, night.steps["acknowledge"].p90) == (9 * MIN, 16 * MIN)
    assert (night.steps["first_reply"].p50, night.steps["first_reply"].p90) == (12 * MIN, 30 * MIN)
    assert times.group("dedicated", "business_hours").steps["page"].n == 0
    assert times.group(ALL, ALL).tickets == 5
    assert times.group(ALL, ALL).steps["first_reply"].p90 == 45 * MIN
    assert times.group("standby", "holiday").tickets == 0


@dataclass
class Scenario:
    world: World
    ids: dict[str, int]


def _principal(desk: Desk, person_id: str) -> object:
    with desk.sessions() as s:
        return principal_of(s.get(PersonRow, person_id))  # type: ignore[arg-type]


def _file(desk: Desk, clock: FrozenClock, person_id: str, at: datetime, priority: str) -> int:
    clock.set(at)
    with desk.transaction() as s:
        who = principal_of(s.get(PersonRow, person_id))  # type: ignore[arg-type]
        made = tickets.create_ticket(s, clock, who, subject="卡顿", body="b", priority=priority, channel=Channel.API)
        return made.id


def _ack(desk: Desk, clock: FrozenClock, ticket_id: int, at: datetime) -> None:
    clock.set(at)
    with desk.transaction() as s:
        on_duty = tickets.on_duty_of(s, ticket_id)
        assert on_duty is not None and on_duty.paged_at is not None, f"ticket {ticket_id} was not paged"
        incidents.acknowledge_as(s, clock, on_duty.incident_id, "primary@vendor.test", via="test")


def _reply(desk: Desk, clock: FrozenClock, agent_id: str, ticket_id: int, at: datetime) -> None:
    clock.set(at)
    with desk.transaction() as s:
        tickets.add_comment(s, clock, principal_of(s.get(PersonRow, agent_id)), ticket_id, body="on it")  # type: ignore[arg-type]


def _mode(desk: Desk, clock: FrozenClock, plan: str, mode: str, service_id: str, at: datetime) -> None:
    clock.set(at)
    with desk.transaction() as s:
        sla.save_plan(s, clock, plan, support={"mode": mode, "paging_service_id": service_id})


@pytest.fixture
def scenario(desk: Desk) -> Scenario:
    load_hooks()  # SLA clocks and on-duty paging follow ticket events, as in the running desk
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    clock.set(utc(2026, 9, 1))
    world = build_world(desk)
    paging = build_paging(desk)
    agent, alice, bob = world.agent_id, world.alice_id, world.bob_id
    _mode(desk, clock, "standard", "dedicated", paging.service, utc(2026, 9, 2))
    ids = {"L0": _file(desk, clock, alice, utc(2026, 10, 1, 1), "P1")}
    _mode(desk, clock, "enterprise", "standby", paging.service, utc(2026, 10, 1, 1, 30))
    plan = {  # ticket: (who, filed, priority, ack after, reply after) in minutes
        "L1": (alice, utc(2026, 10, 1, 2), "P1", 5, 20),
        "L2": (alice, utc(2026, 10, 12, 14), "P2", 10, 40),
        "L3": (alice, utc(2026, 10, 13, 2), "P1", 2, 8),
        "L4": (alice, utc(2026, 10, 13, 3), "P3", None, 30),
        "L5": (alice, utc(2026, 10, 14, 15), "P1", 1, 3),
        "C1": (bob, utc(2026, 10, 12, 14), "P1", 6, 20),
        "C2": (bob, utc(2026, 10, 13, 14), "P1", None, 15),
        "C3": (bob, utc(2026, 10, 14, 3), "P1", 3, None),
        "D": (alice, utc(2026, 10, 16, 14), "P1", 1, 1),
    }
    for name, (who, filed, priority, ack, reply) in plan.items():
        ids[name] = _file(desk, clock, who, filed, priority)
        if ack is not None:
            _ack(desk, clock, ids[name], filed + ack * MIN)
        if reply is not None:
            _reply(desk, clock, agent, ids[name], filed + reply * MIN)
    # L6: filed P4 (no page), raised to P1 by the agent 20 minutes later (pages then).
    filed = utc(2026, 10, 15, 14)
    ids["L6"] = _file(desk, clock, alice, filed, "P4")
    clock.set(filed + 20 * MIN)
    with desk.transaction() as s:
        tickets.change_priority(s, clock, principal_of(s.get(PersonRow, agent)), ids["L6"], "P1")  # type: ignore[arg-type]
    _ack(desk, clock, ids["L6"], filed + 25 * MIN)
    _reply(desk, clock, agent, ids["L6"], filed + 35 * MIN)
    with desk.transaction() as s:  # the drill's ticket counts nowhere
        s.add(
            DrillRow(
                plan="enterprise", service_name="media network cn-east", at_label="03:00", tz="Asia/Shanghai",
                scheduled_at=clock.now(), window_minutes=60, state="done", ticket_id=ids["D"], created_at=clock.now(),
            )
        )  # fmt: skip
    _mode(desk, clock, "enterprise", "queue", paging.service, utc(2026, 10, 20))
    clock.set(utc(2026, 11, 5))
    return Scenario(world, ids)


def test_on_duty_figure_over_the_api(client: TestClient, desk: Desk, scenario: Scenario) -> None:
    query = "?from=2026-10-01&to=2026-10-31&tz=UTC"
    got = client.get(f"/api/v1/reports/on_duty{query}", headers=bearer(scenario.world.admin_token))
    assert got.status_code == 200, got.text
    rows = {(r["mode"], r["hours"]): r for r in got.json()["rows"]}

    def times(mode: str, hours: str) -> tuple[object, ...]:
        r = rows[(mode, hours)]
        return (r["tickets"], r["paged"], r["page_p50_minutes"], r["page_p90_minutes"], r["acknowledged"],
                r["ack_p50_minutes"], r["ack_p90_minutes"], r["answered"], r["reply_p50_minutes"],
                r["reply_p90_minutes"])  # fmt: skip

    # L0 (queue at filing) and the drill are left out; L1-L6 stay standby although Enterprise is a queue again.
    assert times("standby", "out_of_hours") == (3, 3, 0.0, 20.0, 3, 10.0, 25.0, 3, 35.0, 40.0)
    assert times("standby", "business_hours") == (2, 1, 0.0, 0.0, 1, 2.0, 2.0, 2, 8.0, 30.0)
    assert times("standby", "holiday") == (1, 1, 0.0, 0.0, 1, 5.0, 5.0, 1, 20.0, 20.0)
    assert times("standby", "all") == (6, 5, 0.0, 20.0, 5, 5.0, 25.0, 6, 20.0, 40.0)
    assert times("dedicated", "holiday") == (1, 1, 0.0, 0.0, 1, 6.0, 6.0, 1, 20.0, 20.0)
    assert times("dedicated", "business_hours") == (1, 0, None, None, 0, None, None, 1, 15.0, 15.0)
    assert times("dedicated", "out_of_hours") == (1, 1, 0.0, 0.0, 1, 3.0, 3.0, 0, None, None)
    assert times("all", "all") == (9, 7, 0.0, 20.0, 7, 5.0, 25.0, 8, 20.0, 40.0)
    # A customer sees its own organization only: ClassMate's three dedicated tickets.
    mine = client.get(f"/api/v1/reports/on_duty{query}", headers=bearer(scenario.world.bob_token)).json()
    assert {(r["mode"], r["hours"]): r["tickets"] for r in mine["rows"] if r["tickets"]} == {
        ("dedicated", "holiday"): 1, ("dedicated", "business_hours"): 1, ("dedicated", "out_of_hours"): 1,
        ("dedicated", "all"): 3, ("all", "holiday"): 1, ("all", "business_hours"): 1, ("all", "out_of_hours"): 1,
        ("all", "all"): 3,
    }  # fmt: skip
    csv = client.get(f"/api/v1/reports/on_duty.csv{query}", headers=bearer(scenario.world.admin_token))
    assert csv.status_code == 200 and "mode,hours,tickets,paged" in csv.text
    page = client.get("/reports?from=2026-10-01&to=2026-10-31", headers=bearer(scenario.world.admin_token))
    assert page.status_code == 200 and 'id="on_duty"' in page.text


def test_customer_monthly_report_shows_on_duty_times(desk: Desk, scenario: Scenario) -> None:
    admin = _principal(desk, scenario.world.admin_id)
    with desk.sessions() as s:
        report = reports.customer_report(s, desk.clock, admin, "liveco", "2026-10")  # type: ignore[arg-type]
        quiet = reports.customer_report(s, desk.clock, admin, "liveco", "2026-09")  # type: ignore[arg-type]
    assert quiet.on_duty is None and report_view(quiet).on_duty_rows == []
    rows = report_view(report, "en").on_duty_rows
    assert rows == [
        ["business hours", "2", "0 s / 0 s (1)", "2 min / 2 min (1)", "8 min / 30 min (2)"],
        ["out of hours", "3", "0 s / 20 min (3)", "10 min / 25 min (3)", "35 min / 40 min (3)"],
        ["holiday", "1", "0 s / 0 s (1)", "5 min / 5 min (1)", "20 min / 20 min (1)"],
        ["all hours", "6", "0 s / 20 min (5)", "5 min / 25 min (5)", "20 min / 40 min (6)"],
    ]
    assert report_view(report, "zh").on_duty_rows[3][0] == "全部时段"
