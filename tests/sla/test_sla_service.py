"""SLA clocks in the running desk: replayed from the ticket log, timers to the second, edits re-applied."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import delete, func, select

import zhiban.sla.hooks  # noqa: F401  (subscribes the SLA clocks to ticket events)
from zhiban.calendars import service as calendars
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.engine import Worker, list_jobs
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role
from zhiban.identity.service import principal_of
from zhiban.notify.store import InboxRow
from zhiban.sla import service as sla
from zhiban.sla.jobs import registry
from zhiban.sla.store import ClockChangeRow, ClockRow
from zhiban.tickets import service as tickets
from zhiban.tickets.store import TicketRow

SH = ZoneInfo("Asia/Shanghai")
S = timedelta(seconds=1)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


@dataclass
class Desk1:
    desk: Desk
    clock: FrozenClock
    customer: Principal
    agent: Principal
    lead: Principal
    admin: Principal
    worker: Worker


@pytest.fixture
def world(desk: Desk, clock: FrozenClock) -> Desk1:
    """ClassMate (Standard plan, China calendar), an agent in the Video team led by Lead, and an admin."""
    clock.set(sh(2026, 10, 9, 9, 0))
    with desk.transaction() as s:
        sla.ensure_plans(s, clock)
        org = identity.create_organization(s, clock, name="ClassMate", slug="classmate", plan="standard")
        customer = identity.create_person(
            s, clock, email="t@classmate.test", name="Teacher", role=Role.CUSTOMER, organization_id=org.id
        )
        admin = identity.create_person(s, clock, email="boss@vendor.test", name="Boss", role=Role.ADMIN)
        lead = identity.create_person(s, clock, email="lead@vendor.test", name="Lead", role=Role.AGENT)
        agent = identity.create_person(
            s, clock, email="wang@vendor.test", name="Wang", role=Role.AGENT, language="zh", timezone="Asia/Shanghai"
        )
        team = identity.create_team(s, name="Video", domain="video", lead_id=lead.id)
        identity.add_team_member(s, team.id, agent.id)
        people = [principal_of(p) for p in (customer, agent, lead, admin)]
    return Desk1(desk, clock, *people, worker=Worker(desk.sessions, registry, clock))


def file_ticket(w: Desk1, at: datetime, priority: str = "P2", assign: bool = True) -> int:
    w.clock.set(at)
    with w.desk.transaction() as s:
        ticket = tickets.create_ticket(s, w.clock, w.customer, subject="黑屏", body="老师端推流黑屏", priority=priority)
        if assign:
            tickets.assign(s, w.clock, w.agent, ticket.id, w.agent.person_id)
        return ticket.id


def clocks(w: Desk1, ticket_id: int) -> dict[tuple[str, int], dict[str, Any]]:
    with w.desk.transaction() as s:
        rows = s.scalars(select(ClockRow).where(ClockRow.ticket_id == ticket_id))
        return {(r.metric, r.cycle): {c.name: getattr(r, c.name) for c in ClockRow.__table__.columns} for r in rows}


def notes(w: Desk1) -> list[tuple[str, str, str]]:
    with w.desk.transaction() as s:
        rows = s.scalars(select(InboxRow).where(InboxRow.kind.startswith("sla_")).order_by(InboxRow.id))
        names = {p.person_id: p.name for p in (w.agent, w.lead, w.admin)}
        return [(r.kind.removeprefix("sla_"), r.reason, names[r.person_id]) for r in rows]


def test_standard_p2_friday_1750_is_due_on_the_make_up_saturday(world: Desk1) -> None:
    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    first = clocks(world, tid)[("first_response", 1)]
    # 10 minutes on Friday, then 3 h 50 on Saturday 10 October, an official make-up working day.
    assert first["due_at"] == sh(2026, 10, 10, 12, 50)
    assert first["state"] == "active" and first["target_seconds"] == 4 * 3600
    # 75 % of 4 business hours = 3 h: 10 min Friday + 2 h 50 Saturday.
    assert first["warning_at"] == sh(2026, 10, 10, 11, 50)


def test_warning_then_breach_escalates_to_the_second(world: Desk1, monkeypatch: pytest.MonkeyPatch) -> None:
    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    w = world
    w.clock.set(sh(2026, 10, 10, 11, 50) - S)
    assert w.worker.run_once(limit=50) == 0
    w.clock.set(sh(2026, 10, 10, 11, 50))
    assert w.worker.run_once(limit=50) == 1
    assert notes(w) == [("warning", "assignee", "Wang")]
    # Met exactly at the due time is met: no breach at 12:50:00, a breach one second later.
    w.clock.set(sh(2026, 10, 10, 12, 50))
    w.worker.run_once(limit=50)
    assert [n[0] for n in notes(w)] == ["warning"]
    w.clock.set(sh(2026, 10, 10, 12, 50, 1))
    w.worker.run_once(limit=50)
    assert notes(w)[1:] == [
        ("breach", "assignee", "Wang"),
        ("breach", "team_lead", "Lead"),
        ("breach", "manager", "Boss"),
    ]
    assert clocks(w, tid)[("first_response", 1)]["breached_at"] == sh(2026, 10, 10, 12, 50)
    # Running the same timer again changes nothing (idempotent).
    with w.desk.transaction() as s:
        ticket = s.get(TicketRow, tid)
        assert ticket is not None
        row = s.get(ClockRow, (tid, "first_response", 1))
        assert row is not None
        assert sla.notify(s, w.clock, ticket, row, "breach") == []


@dataclass
class Mailbox:
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("ZHIBAN_SMTP_URL", f"smtp://127.0.0.1:{port}?from=desk@vendor.test")
    get_settings.cache_clear()
    yield box
    controller.stop()
    get_settings.cache_clear()


def test_breach_is_mailed_once_per_person_in_their_language(world: Desk1, smtp: Mailbox) -> None:
    file_ticket(world, sh(2026, 10, 9, 17, 50))
    world.clock.set(sh(2026, 10, 10, 13, 0))
    world.worker.run_once(limit=50)  # warning and breach timers: both passed, only the breach is told
    world.worker.run_once(limit=50)  # the e-mails
    world.worker.run_once(limit=50)
    by_to = {str(m["To"]): m for m in smtp.received}
    assert sorted(by_to) == ["boss@vendor.test", "lead@vendor.test", "wang@vendor.test"]
    assert by_to["wang@vendor.test"]["Subject"].startswith("[SLA 超时]")
    assert "12:50" in by_to["wang@vendor.test"]["Subject"]  # due time in Wang's zone
    assert by_to["boss@vendor.test"]["Subject"].startswith("[SLA breach]")
    with world.desk.transaction() as s:
        assert s.scalar(select(func.count()).where(InboxRow.emailed_at.is_(None))) == 0


def test_reply_before_due_cancels_the_timers(world: Desk1) -> None:
    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    world.clock.set(sh(2026, 10, 10, 9, 30))
    with world.desk.transaction() as s:
        tickets.add_comment(s, world.clock, world.agent, tid, body="在看了")
        pending = [j.dedup_key or "" for j in list_jobs(s, state="pending")]
    assert not [k for k in pending if k.startswith(("sla.breach", "sla.warning"))]
    first = clocks(world, tid)[("first_response", 1)]
    assert first["state"] == "fulfilled" and first["fulfilled_at"] == sh(2026, 10, 10, 9, 30)
    world.clock.set(sh(2026, 10, 12, 12, 0))
    world.worker.run_once(limit=50)
    assert notes(world) == []


def _busy_ticket(w: Desk1) -> int:
    with w.desk.transaction() as s:
        targets = [
            {"metric": "first_response", "minutes": 480},
            {"metric": "next_response", "minutes": 120},
            {"metric": "resolution", "minutes": 4320, "calendar": "24x7"},
        ]
        sla.add_rule(s, w.clock, name="all three", plan="standard", targets=targets)
    tid = file_ticket(w, sh(2026, 10, 9, 17, 50), priority="P3")
    steps = [
        (sh(2026, 10, 10, 10, 0), lambda s: tickets.add_comment(s, w.clock, w.agent, tid, body="need logs")),
        (sh(2026, 10, 10, 10, 5), lambda s: tickets.change_status(s, w.clock, w.agent, tid, "pending")),
        (sh(2026, 10, 12, 9, 30), lambda s: tickets.add_comment(s, w.clock, w.customer, tid, body="logs attached")),
        (sh(2026, 10, 12, 9, 40), lambda s: tickets.change_priority(s, w.clock, w.agent, tid, "P2")),
        (sh(2026, 10, 12, 9, 41), lambda s: tickets.add_comment(s, w.clock, w.agent, tid, body="x", public=False)),
    ]
    for at, step in steps:
        w.clock.set(at)
        with w.desk.transaction() as s:
            step(s)
    return tid


def test_recomputing_from_the_log_gives_the_same_clocks(world: Desk1) -> None:
    tid = _busy_ticket(world)
    before = clocks(world, tid)
    # The customer's message after the first reply opened a next-response cycle; pending paused resolution.
    assert before[("next_response", 1)]["state"] == "fulfilled" or before[("next_response", 1)]["state"] == "active"
    assert before[("resolution", 1)]["state"] == "active"
    world.clock.set(sh(2026, 10, 12, 9, 40))  # the last event that could move a clock: same "now" as before
    with world.desk.transaction() as s:
        s.execute(delete(ClockRow))
        report = sla.recompute_open_tickets(s, world.clock)
    assert report.tickets == 1
    after = clocks(world, tid)
    timer_cols = ("warning_timer_at", "breach_timer_at")
    strip = {k: {c: v for c, v in row.items() if c not in timer_cols} for k, row in before.items()}
    assert {k: {c: v for c, v in row.items() if c not in timer_cols} for k, row in after.items()} == strip
    with world.desk.transaction() as s:
        ticket = s.get(TicketRow, tid)
        assert ticket is not None
        sla.recompute_ticket(s, world.clock, ticket)
    assert clocks(world, tid) == after


def test_calendar_edit_applies_from_now_on_and_keeps_time_used(world: Desk1) -> None:
    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    # Saturday 10:00: 10 min Friday + 1 h Saturday used. A typhoon closes the office for the rest of the day.
    world.clock.set(sh(2026, 10, 10, 10, 0))
    with world.desk.transaction() as s:
        cal = calendars.find_calendar(s, "CN Asia/Shanghai")
        assert cal is not None
        calendars.edit_dates(s, world.clock, cal.id, add_holidays=["2026-10-10"])
    first = clocks(world, tid)[("first_response", 1)]
    # 2 h 50 left, counted from Monday 09:00.
    assert first["due_at"] == sh(2026, 10, 12, 11, 50)
    with world.desk.transaction() as s:
        reasons = [h.reason for h in s.scalars(select(ClockChangeRow).where(ClockChangeRow.ticket_id == tid))]
    assert reasons == ["started", "calendar_changed"]
    # The breach timer armed for Saturday 12:50 fires early, finds nothing due, and re-arms for Monday.
    world.clock.set(sh(2026, 10, 10, 12, 50, 1))
    world.worker.run_once(limit=50)
    assert [n for n in notes(world) if n[0] == "breach"] == []
    world.clock.set(sh(2026, 10, 12, 11, 50))
    world.worker.run_once(limit=50)
    assert [n for n in notes(world) if n[0] == "breach"] == []
    world.clock.set(sh(2026, 10, 12, 11, 50, 1))
    world.worker.run_once(limit=50)
    assert ("breach", "assignee", "Wang") in notes(world)


def test_plan_edit_retargets_open_tickets_keeping_time_used(world: Desk1) -> None:
    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    world.clock.set(sh(2026, 10, 10, 10, 0))  # 1 h 10 min used
    with world.desk.transaction() as s:
        sla.save_plan(s, world.clock, "standard", targets={"P2": [{"metric": "first_response", "minutes": 120}]})
    # 50 business minutes left from 10:00 Saturday.
    assert clocks(world, tid)[("first_response", 1)]["due_at"] == sh(2026, 10, 10, 10, 50)
    # A new ticket gets the new target from its start.
    other = file_ticket(world, sh(2026, 10, 12, 9, 0))
    assert clocks(world, other)[("first_response", 1)]["due_at"] == sh(2026, 10, 12, 11, 0)


def test_policy_rule_checked_before_the_plan(world: Desk1) -> None:
    with world.desk.transaction() as s:
        sla.add_rule(
            s,
            world.clock,
            name="ClassMate P2 24x7",
            plan="standard",
            priority="P2",
            targets=[{"metric": "first_response", "minutes": 60, "calendar": "24x7"}],
        )
    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    assert clocks(world, tid)[("first_response", 1)]["due_at"] == sh(2026, 10, 9, 18, 50)


def test_queue_puts_overdue_first_then_nearest_due_then_unclocked(world: Desk1) -> None:
    overdue = file_ticket(world, sh(2026, 10, 9, 9, 0), priority="P2")  # due 13:00
    later = file_ticket(world, sh(2026, 10, 9, 10, 0), priority="P4")  # 18 business hours
    soon = file_ticket(world, sh(2026, 10, 9, 14, 0), priority="P2")  # due 18:00
    with world.desk.transaction() as s:
        sla.save_plan(
            s,
            world.clock,
            "standard",
            targets={"P3": []}
            | {
                "P2": [{"metric": "first_response", "minutes": 240}],
                "P4": [{"metric": "first_response", "minutes": 1080}],
            },
        )
    unclocked = file_ticket(world, sh(2026, 10, 9, 14, 30), priority="P3")
    world.clock.set(sh(2026, 10, 9, 15, 0))
    with world.desk.transaction() as s:
        items = sla.queue_order(s, world.agent, limit=10, clock=world.clock)
        order = [i.ticket.id for i in items]
        badges = {i.ticket.id: i.badge for i in items}
    assert order == [overdue, soon, later, unclocked]
    first = badges[overdue]
    assert first is not None and first.left == -timedelta(hours=2)
    soon_badge = badges[soon]
    assert soon_badge is not None and soon_badge.business and soon_badge.left == timedelta(hours=3)
    assert badges[unclocked] is None
    with world.desk.transaction() as s, pytest.raises(Exception, match="agent or an admin"):
        sla.queue_order(s, world.customer, limit=10, clock=world.clock)


def test_pending_pauses_and_solved_fulfils(world: Desk1) -> None:
    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    world.clock.set(sh(2026, 10, 9, 17, 55))
    with world.desk.transaction() as s:
        tickets.change_status(s, world.clock, world.agent, tid, "pending")
    first = clocks(world, tid)[("first_response", 1)]
    assert first["state"] == "paused" and first["due_at"] is None and first["breach_timer_at"] is None
    world.clock.set(sh(2026, 10, 12, 9, 0))
    with world.desk.transaction() as s:
        tickets.add_comment(s, world.clock, world.customer, tid, body="still broken")
    # 5 min used on Friday; 3 h 55 left from Monday 09:00.
    assert clocks(world, tid)[("first_response", 1)]["due_at"] == sh(2026, 10, 12, 12, 55)
    world.clock.set(sh(2026, 10, 12, 10, 0))
    with world.desk.transaction() as s:
        tickets.change_status(s, world.clock, world.agent, tid, "solved")
        assert sla.queue_order(s, world.agent, limit=10, clock=world.clock) == []
    assert clocks(world, tid)[("first_response", 1)]["state"] == "fulfilled"


def test_due_times_without_and_with_the_database(world: Desk1) -> None:
    at = sh(2026, 10, 9, 17, 50)
    builtin = sla.due_times("Standard", "P2", "CN", "Asia/Shanghai", at)
    assert builtin["first_response_due"] == sh(2026, 10, 10, 12, 50) and builtin["resolution_due"] is None
    with world.desk.transaction() as s:
        sla.save_plan(s, world.clock, "standard", targets={"P2": [{"metric": "first_response", "minutes": 60}]})
        assert sla.due_times("standard", "p2", "CN", "Asia/Shanghai", at, s)["first_response_due"] == sh(
            2026, 10, 10, 9, 50
        )
        with pytest.raises(Exception, match="unknown plan"):
            sla.due_times("gold", "P2", "CN", "Asia/Shanghai", at, s)


def test_targeted_calendar_edit_leaves_nothing_for_a_full_recompute(world: Desk1) -> None:
    """The edit replays only clocks that can move; a full replay afterwards finds nothing left to change."""
    business = file_ticket(world, sh(2026, 10, 9, 17, 50))  # P2 on Standard: business hours
    # P1 on Standard runs on 7x24; filed at 09:30, it is not yet due when the calendar changes at 10:00.
    always = file_ticket(world, sh(2026, 10, 10, 9, 30), priority="P1")
    always_before = clocks(world, always)
    world.clock.set(sh(2026, 10, 10, 10, 0))
    with world.desk.transaction() as s:
        cal = calendars.find_calendar(s, "CN Asia/Shanghai")
        assert cal is not None
        calendars.edit_dates(s, world.clock, cal.id, add_holidays=["2026-10-10"])
    assert clocks(world, business)[("first_response", 1)]["due_at"] == sh(2026, 10, 12, 11, 50)
    assert clocks(world, always) == always_before  # a 7x24 clock cannot move with a business calendar
    with world.desk.transaction() as s:
        report = sla.recompute_open_tickets(s, world.clock)
    assert report.tickets == 2 and report.changed == 0


def test_an_email_job_queued_before_the_outbox_is_handed_to_it(world: Desk1, smtp: Mailbox) -> None:
    from zhiban.engine import enqueue

    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    with world.desk.transaction() as s:
        note = InboxRow(
            person_id=world.agent.person_id, ticket_id=tid, kind="sla_breach", key=f"sla:{tid}:first_response:1:breach",
            reason="assignee", title="黑屏", due_at=sh(2026, 10, 10, 12, 50), created_at=world.clock.now(),
            data={"metric": "first_response", "cycle": 1},
        )  # fmt: skip
        s.add(note)
        s.flush()
        enqueue(s, "sla.email", {"notification_id": note.id}, due_at=world.clock.now())
    world.worker.run_once(limit=50)  # the old job hands the notice to notify
    world.worker.run_once(limit=50)  # notify sends it
    [mail] = smtp.received
    assert mail["To"] == "wang@vendor.test" and mail["Subject"].startswith("[SLA 超时]")
    with world.desk.transaction() as s:
        assert s.scalar(select(func.count()).where(InboxRow.emailed_at.is_(None))) == 0


def test_warning_and_breach_mail_are_in_the_one_outbox(world: Desk1) -> None:
    from zhiban.notify import outbox

    tid = file_ticket(world, sh(2026, 10, 9, 17, 50))
    world.clock.set(sh(2026, 10, 10, 11, 50))
    world.worker.run_once(limit=50)
    world.clock.set(sh(2026, 10, 10, 12, 50, 1))
    world.worker.run_once(limit=50)
    world.worker.run_once(limit=50)
    with world.desk.transaction() as s:
        rows = outbox.recent(s, kind="sla", ticket_id=tid)
        told = sorted((r.kind, r.destination["config"]["to"][0], r.state) for r in rows)
    assert told == [
        ("sla.breach", "boss@vendor.test", "sent"),
        ("sla.breach", "lead@vendor.test", "sent"),
        ("sla.breach", "wang@vendor.test", "sent"),
        ("sla.warning", "wang@vendor.test", "sent"),
    ]


def test_one_transaction_sees_its_own_calendar_and_plan_edits(world: Desk1) -> None:
    """A filed ticket's calendar and support terms are read once per transaction: an edit made in the same
    transaction is seen by the next ticket (the memo is forgotten), and a new transaction reads afresh."""
    from zhiban.incidents import service as incidents
    from zhiban.sla.store import SlaTicketRow

    w = world
    w.clock.set(sh(2026, 10, 9, 17, 50))
    with w.desk.transaction() as s:
        first = tickets.create_ticket(s, w.clock, w.customer, subject="黑屏", body="老师端推流黑屏", priority="P2")
        assert sla.support_of(s, "standard").mode.value == "queue"
        always = calendars.create_calendar(
            s, w.clock, name="ClassMate evenings", tz="Asia/Shanghai", weekly={d: "18:00-23:00" for d in range(7)}
        )
        sla.assign_calendar(s, w.customer.organization_id or "", always.id)
        policy = incidents.create_policy(
            s,
            w.clock,
            name="tickets",
            levels=[{"delay_minutes": 10, "targets": [{"kind": "person", "ref": w.lead.person_id}]}],
        )
        service = incidents.create_service(s, w.clock, name="P1 tickets", policy=policy.id, urgency_rule="high")
        sla.save_plan(s, w.clock, "standard", support={"mode": "standby", "paging_service_id": service.id})
        assert sla.support_of(s, "standard").mode.value == "standby"
        second = tickets.create_ticket(s, w.clock, w.customer, subject="卡顿", body="直播卡顿", priority="P3")
        contexts = {r.ticket_id: r for r in s.scalars(select(SlaTicketRow))}
        assert contexts[first.id].calendar_id != always.id
        assert contexts[second.id].calendar_id == always.id
        version = contexts[second.id].policy_version
        assert version == contexts[first.id].policy_version + 1  # filed under the plan as edited
    with w.desk.transaction() as s:
        assert sla.support_of(s, "standard").mode.value == "standby"
        third = tickets.create_ticket(s, w.clock, w.customer, subject="回声", body="通话回声", priority="P4")
        row = s.get(SlaTicketRow, third.id)
        assert row is not None and row.calendar_id == always.id and row.policy_version == version
