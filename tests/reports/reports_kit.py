"""A small desk history with hand-computed report figures (times reuse tests/reports/test_metrics.py's scenarios).

LiveCo (Enterprise, CN, Asia/Shanghai) and ClassMate (Standard, US, America/New_York) file these tickets:

| # | org       | filed (UTC)       | local meaning                              | first public reply |
| 1 | LiveCo    | Sat 10 Oct 02:00  | 10:00 official make-up working day: BH     | +20 min            |
| 2 | LiveCo    | Thu  1 Oct 02:00  | 10:00 National Day: holiday                | +50 min            |
| 3 | LiveCo    | Mon 12 Oct 14:00  | 22:00 Monday night: out of hours           | +30 min            |
| 4 | ClassMate | Mon 12 Oct 14:00  | 10:00 New York on Columbus Day: holiday    | +12 min            |
| 5 | LiveCo    | Tue 13 Oct 02:00  | 10:00: business hours                      | none (backlog)     |

Ticket 1 is solved after its one reply (one touch); ticket 2 is solved, reopened by the customer, solved
again; ticket 3 is solved after two replies. An incident on "media network" (policy pages team Network)
triggers Mon 12 Oct 13:54 UTC, 6 minutes before ticket 3, which is linked to it; acknowledged after 4 min,
resolved after 70 min. A drill ticket and incident exist too, and must count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.tenancy import World, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.drills.store import DrillRow
from zhiban.features import load_hooks
from zhiban.identity import service as identity
from zhiban.identity.service import principal_of
from zhiban.identity.store import PersonRow
from zhiban.incidents import service as incidents
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel

MIN = timedelta(minutes=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@dataclass
class History:
    world: World
    ids: dict[int, int]  # scenario number → ticket id
    incident_id: str
    drill_ticket: int
    network_team: str


def _file(desk: Desk, clock: FrozenClock, person_id: str, at: datetime, priority: str = "P1") -> int:
    clock.set(at)
    with desk.transaction() as s:
        person = s.get(PersonRow, person_id)
        assert person is not None
        return tickets.create_ticket(
            s, clock, principal_of(person), subject=f"t {at.isoformat()}", body="b", priority=priority,
            channel=Channel.PORTAL,
        ).id  # fmt: skip


def _reply(desk: Desk, clock: FrozenClock, agent_id: str, ticket_id: int, at: datetime) -> None:
    clock.set(at)
    with desk.transaction() as s:
        agent = s.get(PersonRow, agent_id)
        assert agent is not None
        tickets.add_comment(s, clock, principal_of(agent), ticket_id, body="on it")


def _status(desk: Desk, clock: FrozenClock, person_id: str, ticket_id: int, status: str, at: datetime) -> None:
    clock.set(at)
    with desk.transaction() as s:
        person = s.get(PersonRow, person_id)
        assert person is not None
        tickets.change_status(s, clock, principal_of(person), ticket_id, status)


def build_history(desk: Desk) -> History:
    load_hooks()  # SLA clocks and triage follow ticket events, as in the running desk
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    clock.set(utc(2026, 9, 1))
    world = build_world(desk)
    agent = world.agent_id
    with desk.transaction() as s:
        team = identity.create_team(s, name="Network", domain="network")
        identity.add_team_member(s, team.id, agent)
        policy = incidents.create_policy(
            s, clock, name="network", levels=[{"delay_minutes": 5, "targets": [{"kind": "team", "ref": team.id}]}]
        )
        service = incidents.create_service(s, clock, name="media network", policy=policy.id)
        service_id, team_id = service.id, team.id
    ids = {
        1: _file(desk, clock, world.alice_id, utc(2026, 10, 10, 2)),
        2: _file(desk, clock, world.alice_id, utc(2026, 10, 1, 2)),
        4: _file(desk, clock, world.bob_id, utc(2026, 10, 12, 14), priority="P2"),
    }
    _reply(desk, clock, agent, ids[1], utc(2026, 10, 10, 2, 20))
    _status(desk, clock, agent, ids[1], "solved", utc(2026, 10, 10, 3))
    _reply(desk, clock, agent, ids[2], utc(2026, 10, 1, 2, 50))
    _status(desk, clock, agent, ids[2], "solved", utc(2026, 10, 1, 4))
    _status(desk, clock, world.alice_id, ids[2], "open", utc(2026, 10, 1, 5))  # the customer reopens it
    _status(desk, clock, agent, ids[2], "solved", utc(2026, 10, 1, 6))
    _reply(desk, clock, agent, ids[4], utc(2026, 10, 12, 14, 12))

    clock.set(utc(2026, 10, 12, 13, 54))
    with desk.transaction() as s:
        incident_id = incidents.open_incident(
            s, clock, incidents.get_service(s, service_id), title="sh-edge-07 packet loss cn-east", severity="critical"
        ).id
    ids[3] = _file(desk, clock, world.alice_id, utc(2026, 10, 12, 14))
    with desk.transaction() as s:
        incidents.link_ticket(s, incident_id, ids[3])
    clock.set(utc(2026, 10, 12, 13, 58))
    with desk.transaction() as s:
        incidents.acknowledge(s, clock, principal_of(s.get(PersonRow, agent)), incident_id)  # type: ignore[arg-type]
    _reply(desk, clock, agent, ids[3], utc(2026, 10, 12, 14, 30))
    _reply(desk, clock, agent, ids[3], utc(2026, 10, 12, 14, 40))
    _status(desk, clock, agent, ids[3], "solved", utc(2026, 10, 12, 15))
    clock.set(utc(2026, 10, 12, 15, 4))
    with desk.transaction() as s:
        incidents.resolve(s, clock, principal_of(s.get(PersonRow, agent)), incident_id)  # type: ignore[arg-type]
    ids[5] = _file(desk, clock, world.alice_id, utc(2026, 10, 13, 2))

    # A drill: its ticket (answered at once) and incident must not move any figure.
    drill_ticket = _file(desk, clock, world.alice_id, utc(2026, 10, 10, 2, 5))
    _reply(desk, clock, agent, drill_ticket, utc(2026, 10, 10, 2, 6))
    clock.set(utc(2026, 10, 14, 1))
    with desk.transaction() as s:
        drill_incident = incidents.open_incident(s, clock, incidents.get_service(s, service_id), title="[DRILL]").id
        s.add(
            DrillRow(
                plan="enterprise", service_id=service_id, service_name="media network", at_label="03:00",
                tz="Asia/Shanghai", scheduled_at=clock.now(), window_minutes=60, state="done",
                ticket_id=drill_ticket, incident_id=drill_incident, created_at=clock.now(),
            )
        )  # fmt: skip
    clock.set(utc(2026, 10, 20, 12))
    return History(world, ids, incident_id, drill_ticket, team_id)
