"""Drills: when "Sunday 03:00" comes, and a drill run end to end through the real chain with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.incidents.incident_kit import Receiver, build, drain, worker
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import InvalidInput
from zhiban.desk import Desk
from zhiban.drills import service
from zhiban.drills.model import next_occurrence
from zhiban.drills.store import DrillRow
from zhiban.features import load_hooks
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role
from zhiban.identity.service import principal_of
from zhiban.identity.store import PersonRow
from zhiban.incidents import service as incidents
from zhiban.mail.store import MailMessageRow
from zhiban.notify.store import NotificationRow
from zhiban.tickets import service as tickets
from zhiban.tickets.store import TicketRow

# The tests' webhook receivers listen on 127.0.0.1, which only an allowlist lets zhiban reach.
pytestmark = pytest.mark.usefixtures("allow_loopback_egress")

SAT_0300_SHANGHAI = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)  # the conftest clock
ADMIN = Principal(person_id="admin", role=Role.ADMIN, organization_id=None)


def test_next_occurrence() -> None:
    # Saturday 03:00 in Shanghai (UTC+8): the next Sunday 03:00 is tomorrow, 19:00 UTC today.
    assert next_occurrence("Sunday 03:00", SAT_0300_SHANGHAI, "Asia/Shanghai") == datetime(2026, 11, 21, 19, tzinfo=UTC)
    assert next_occurrence("周日 03:00", SAT_0300_SHANGHAI, "Asia/Shanghai") == datetime(2026, 11, 21, 19, tzinfo=UTC)
    # "Saturday 03:00" is now exactly, so the next one is a week later; "03:00" alone is tomorrow.
    assert next_occurrence("sat 03:00", SAT_0300_SHANGHAI, "Asia/Shanghai") == datetime(2026, 11, 27, 19, tzinfo=UTC)
    assert next_occurrence("03:00", SAT_0300_SHANGHAI, "Asia/Shanghai") == datetime(2026, 11, 21, 19, tzinfo=UTC)
    # New York is on EST (UTC-5) after 1 November 2026: Sunday 22 Nov 03:00 is 08:00 UTC.
    assert next_occurrence("Sunday 03:00", SAT_0300_SHANGHAI, "America/New_York") == datetime(
        2026, 11, 22, 8, tzinfo=UTC
    )
    assert next_occurrence("2026-12-24 21:30", SAT_0300_SHANGHAI, "Asia/Shanghai") == datetime(
        2026, 12, 24, 13, 30, tzinfo=UTC
    )
    for bad in ("Someday 03:00", "Sunday 25:00", "2026-11-01 03:00", "next week", "2026-02-30 03:00"):
        with pytest.raises(InvalidInput):
            next_occurrence(bad, SAT_0300_SHANGHAI, "Asia/Shanghai")
    with pytest.raises(InvalidInput):
        next_occurrence("03:00", SAT_0300_SHANGHAI, "Mars/Olympus")


def _teams(desk: Desk) -> None:
    with desk.transaction() as s:
        for name, domain in (
            ("Network", "network"),
            ("Video & Audio", "video"),
            ("SDK & Integration", "sdk_integration"),
        ):
            identity.create_team(s, name=name, domain=domain)


def test_drill_end_to_end_passes_and_never_mails_the_customer(desk: Desk) -> None:
    load_hooks()  # SLA, triage and the ticket mail hook, as in the running desk
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    receiver = Receiver(clock_now=clock.now)
    with receiver.running():
        kit = build(desk, receiver.url)
        _teams(desk)
        with desk.transaction() as s:
            drill = service.schedule_drill(
                s, clock, ADMIN, plan="enterprise", service="media network cn-east", at="Sunday 03:00",
                tz="Asia/Shanghai", window_minutes=60,
            )  # fmt: skip
            drill_id = drill.id
            assert drill.scheduled_at == datetime(2026, 11, 21, 19, tzinfo=UTC)
        w = worker(desk)
        drain(w)
        with desk.transaction() as s:
            assert s.get(DrillRow, drill_id).state == "scheduled"  # type: ignore[union-attr]
        clock.set(datetime(2026, 11, 21, 19, tzinfo=UTC))
        drain(w)  # the drill starts: ticket, alert → incident → first escalation step pages the primary
        with desk.transaction() as s:
            row = s.get(DrillRow, drill_id)
            assert row is not None and row.state == "running" and row.ticket_id and row.incident_id
            ticket = s.get(TicketRow, row.ticket_id)
            assert ticket is not None and ticket.subject.startswith("[DRILL") and ticket.priority == "P1"
            ticket_id, incident_id = row.ticket_id, row.incident_id
            primary = principal_of(s.get(PersonRow, kit.primary))  # type: ignore[arg-type]
        assert len(receiver.bodies) == 1  # the on-call engineer was paged, through the real webhook channel
        clock.advance(timedelta(minutes=4))
        with desk.transaction() as s:
            incidents.acknowledge(s, clock, primary, incident_id)
        clock.advance(timedelta(minutes=5))
        with desk.transaction() as s:
            tickets.add_comment(s, clock, primary, ticket_id, body="Looking at cn-east now.")
        drain(w)
        clock.advance(timedelta(minutes=60))
        drain(w)
        with desk.transaction() as s:
            row = s.get(DrillRow, drill_id)
            assert row is not None and row.state == "done" and row.result is not None
            result = row.result
            # Enterprise P1 first response is 15 min: acknowledged after 4 min, answered after 9 min → pass.
            checks = {c["name"]: c for c in result["checks"]}
            assert checks["acknowledge"]["actual_seconds"] == 240 and checks["acknowledge"]["target_seconds"] == 900
            assert checks["first_response"]["actual_seconds"] == 540
            assert result["passed"] is True, result["problems"]
            assert result["teams"]  # times per team: the incident's and the ticket's
            # The drill ended: incident resolved, ticket solved.
            assert s.get(TicketRow, ticket_id).status == "solved"  # type: ignore[union-attr]
            # No mail was ever queued for the drill's synthetic requester, although an agent replied in public.
            assert s.scalar(select(func.count()).where(MailMessageRow.ticket_id == ticket_id)) == 0
            customer_ids = select(PersonRow.id).where(PersonRow.role == "customer")
            assert s.scalar(select(func.count()).where(NotificationRow.person_id.in_(customer_ids))) == 0


def test_drill_reports_what_broke(desk: Desk) -> None:
    load_hooks()
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    receiver = Receiver(status=[400] * 20, clock_now=clock.now)  # the webhook refuses every page
    with receiver.running():
        build(desk, receiver.url)
        with desk.transaction() as s:
            empty = identity.create_team(s, name="Night shift", domain="night")
            policy = incidents.create_policy(s, clock, name="empty", levels=[
                {"delay_minutes": 5, "targets": [{"kind": "team", "ref": empty.id}]}])  # fmt: skip
            incidents.create_service(s, clock, name="lonely service", policy=policy.id)
            failing = service.schedule_drill(s, clock, ADMIN, plan="enterprise", service="media network cn-east",
                                             at="03:30", tz="Asia/Shanghai", window_minutes=30)  # fmt: skip
            lonely = service.schedule_drill(s, clock, ADMIN, plan="enterprise", service="lonely service", at="03:30",
                                            tz="Asia/Shanghai", window_minutes=30)  # fmt: skip
            ids = failing.id, lonely.id
            with pytest.raises(InvalidInput):
                service.schedule_drill(s, clock, ADMIN, plan="platinum", service="lonely service", at="03:30")
        w = worker(desk)
        clock.advance(timedelta(minutes=30))
        for _ in range(8):  # deliveries fail and are retried with backoff until they give up
            drain(w)
            clock.advance(timedelta(minutes=3))
        clock.advance(timedelta(minutes=30))
        drain(w)
        with desk.transaction() as s:
            failed, nobody = (s.get(DrillRow, i).result for i in ids)  # type: ignore[union-attr]
    assert failed is not None and failed["passed"] is False
    assert any(p.startswith("channel failing: webhook") for p in failed["problems"]), failed["problems"]
    assert "the page was not acknowledged within the drill window" in failed["problems"]
    assert nobody is not None and nobody["passed"] is False
    assert "nobody on call: the escalation policy paged nobody" in nobody["problems"], nobody["problems"]
