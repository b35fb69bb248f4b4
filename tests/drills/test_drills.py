"""Drills: when "Sunday 03:00" comes, and drills run end to end with a frozen clock: a drill customer's ticket
filed through the desk's real HTTP API (uvicorn on loopback), paging by the ticket alone, and what broke."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.incidents.incident_kit import Receiver, build, drain, worker
from tests.tenancy import bearer, build_world
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
from zhiban.identity.store import ApiTokenRow, OrganizationRow, PersonRow
from zhiban.incidents import service as incidents
from zhiban.incidents.store import AlertRow, IncidentRow
from zhiban.mail.store import MailMessageRow
from zhiban.notify.store import NotificationRow
from zhiban.reports.queries import Scope, on_duty_facts, ticket_facts
from zhiban.sla import service as sla
from zhiban.tickets import service as tickets
from zhiban.tickets.store import TicketRow
from zhiban.web.app import create_app

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(desk: Desk) -> Iterator[str]:
    """The desk's web app on a real loopback port (the drill's intake), with the desk's clock and database."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(desk), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    service.configure(api_url=url)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _teams(desk: Desk) -> None:
    with desk.transaction() as s:
        for name, domain in (
            ("Network", "network"),
            ("Video & Audio", "video"),
            ("SDK & Integration", "sdk_integration"),
        ):
            identity.create_team(s, name=name, domain=domain)


def _support(desk: Desk, plan: str, mode: str, service_id: str) -> None:
    with desk.transaction() as s:
        sla.save_plan(s, desk.clock, plan, support={"mode": mode, "paging_service_id": service_id})


def test_drill_files_through_the_api_pages_by_the_ticket_alone_and_never_mails_the_customer(desk: Desk) -> None:
    load_hooks()  # SLA, triage, on-duty paging and the ticket mail hook, as in the running desk
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    receiver = Receiver(clock_now=clock.now)
    with receiver.running(), serving(desk):
        kit = build(desk, receiver.url)
        _teams(desk)
        _support(desk, "enterprise", "standby", kit.service)
        with desk.transaction() as s:
            with pytest.raises(InvalidInput, match="queue"):  # a queue plan wakes nobody: nothing to drill
                service.schedule_drill(s, clock, ADMIN, plan="standard", at="Sunday 03:00")
            drill = service.schedule_drill(
                s, clock, ADMIN, plan="enterprise", at="Sunday 03:00", tz="Asia/Shanghai", window_minutes=60
            )
            drill_id = drill.id
            assert drill.scheduled_at == datetime(2026, 11, 21, 19, tzinfo=UTC)
            assert drill.service_name == "media network cn-east"  # where the plan pages
        w = worker(desk)
        drain(w)
        with desk.transaction() as s:
            assert s.get(DrillRow, drill_id).state == "scheduled"  # type: ignore[union-attr]
        clock.set(datetime(2026, 11, 21, 19, tzinfo=UTC))
        drain(w)  # the drill files its ticket through the API; the ticket pages the primary on its own
        with desk.transaction() as s:
            row = s.get(DrillRow, drill_id)
            assert row is not None and row.state == "running" and row.ticket_id and row.incident_id
            ticket = s.get(TicketRow, row.ticket_id)
            assert ticket is not None and ticket.subject.startswith("[DRILL") and ticket.priority == "P1"
            assert ticket.channel == "api"  # through the customer's door
            org = s.get(OrganizationRow, ticket.organization_id)
            assert org is not None and org.drill and org.plan == "enterprise"
            incident = s.get(IncidentRow, row.incident_id)
            assert incident is not None and incident.ticket_id == ticket.id  # the ticket's own on-duty incident
            assert s.scalar(select(func.count()).select_from(AlertRow)) == 0  # no synthetic alert any more
            # The drill customer's token filed once and was revoked.
            assert s.scalar(select(func.count()).where(ApiTokenRow.revoked_at.is_(None), ApiTokenRow.person_id
                                                       == ticket.requester_id)) == 0  # fmt: skip
            ticket_id, incident_id = row.ticket_id, row.incident_id
            primary = principal_of(s.get(PersonRow, kit.primary))  # type: ignore[arg-type]
        assert len(receiver.bodies) == 1  # the on-call engineer was paged, through the real webhook channel
        assert "[DRILL" in str(receiver.bodies[0])  # the page says it is a drill
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
            # Paged at once; acknowledged 4 min after the page; answered 9 min after the ticket (target 15 min).
            checks = {c["name"]: c for c in result["checks"]}
            assert checks["page"]["actual_seconds"] == 0 and checks["page"]["target_seconds"] == 300
            assert checks["acknowledge"]["actual_seconds"] == 240 and checks["acknowledge"]["target_seconds"] == 900
            assert checks["first_response"]["actual_seconds"] == 540
            assert result["passed"] is True and result["broke"] is None, result["problems"]
            # The drill ended: ticket solved, its page resolved.
            assert s.get(TicketRow, ticket_id).status == "solved"  # type: ignore[union-attr]
            assert s.get(IncidentRow, incident_id).status == "resolved"  # type: ignore[union-attr]
            # No mail was ever queued for the drill customer, although an agent replied in public.
            assert s.scalar(select(func.count()).where(MailMessageRow.ticket_id == ticket_id)) == 0
            customer_ids = select(PersonRow.id).where(PersonRow.role == "customer")
            assert s.scalar(select(func.count()).where(NotificationRow.person_id.in_(customer_ids))) == 0
            # Reports leave the drill out.
            scope = Scope(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
            assert ticket_facts(s, scope, as_of=clock.now()) == []
            assert on_duty_facts(s, scope, as_of=clock.now()) == []


def _result(desk: Desk, drill_id: str) -> dict:
    with desk.transaction() as s:
        row = s.get(DrillRow, drill_id)
        assert row is not None and row.result is not None, row and row.state
        return row.result


def test_drill_says_which_step_broke(desk: Desk) -> None:
    load_hooks()
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    receiver = Receiver(status=[400] * 20, clock_now=clock.now)  # the webhook refuses every page
    with receiver.running(), serving(desk):
        kit = build(desk, receiver.url)
        _support(desk, "enterprise", "standby", kit.service)
        _support(desk, "premium", "dedicated", kit.service)
        with desk.transaction() as s:
            # Saturday 03:30: Enterprise (standby) pages, but the page fails and nobody acknowledges.
            unacknowledged = service.schedule_drill(s, clock, ADMIN, plan="enterprise", at="03:30", window_minutes=30)
            # Monday 10:00 (business hours): a dedicated plan gives the ticket to the dedicated contact, no page.
            in_hours = service.schedule_drill(s, clock, ADMIN, plan="premium", at="Monday 10:00", window_minutes=30)
            ids = unacknowledged.id, in_hours.id
        w = worker(desk)
        clock.advance(timedelta(minutes=30))
        for _ in range(8):  # deliveries fail and are retried with backoff until they give up
            drain(w)
            clock.advance(timedelta(minutes=3))
        clock.advance(timedelta(minutes=30))
        drain(w)
        failed = _result(desk, ids[0])
        assert failed["passed"] is False and failed["broke"] == "acknowledge"
        assert failed["problems"][0] == "no acknowledgement within 15 min of the page", failed["problems"]
        assert any(p.startswith("channel failing: webhook") for p in failed["problems"]), failed["problems"]
        clock.set(datetime(2026, 11, 23, 2, tzinfo=UTC))  # Monday 10:00 Shanghai
        drain(w)
        clock.advance(timedelta(minutes=31))
        drain(w)
        quiet = _result(desk, ids[1])
        assert quiet["passed"] is False and quiet["broke"] == "page"
        assert quiet["problems"][0] == "no page within 5 min of the ticket", quiet["problems"]
        assert any("dedicated plan hands tickets to the dedicated contact" in p for p in quiet["problems"])
        # The intake itself down: the drill says so and files nothing.
        with desk.transaction() as s:
            dead = service.schedule_drill(s, clock, ADMIN, plan="enterprise", at="23:00", window_minutes=30).id
        service.configure(api_url=f"http://127.0.0.1:{_free_port()}")
        clock.set(datetime(2026, 11, 23, 15, tzinfo=UTC))
        drain(w)
        down = _result(desk, dead)
        assert down["passed"] is False and down["broke"] == "intake"
        assert down["problems"][0].startswith("intake failed: the ticket API at http://127.0.0.1:"), down["problems"]


def test_drills_page_offers_paging_plans_only(client: TestClient, desk: Desk) -> None:
    world = build_world(desk)
    kit = build(desk)
    _support(desk, "enterprise", "standby", kit.service)
    admin = bearer(world.admin_token)
    page = client.get("/agent/drills", headers=admin)
    assert page.status_code == 200
    assert "<option>enterprise</option>" in page.text and "<option>basic</option>" not in page.text
    refused = client.post("/agent/drills", data={"plan": "basic", "at": "Sunday 03:00"}, headers=admin)
    assert refused.status_code == 422 and "queue" in refused.text
    made = client.post(
        "/agent/drills", data={"plan": "enterprise", "at": "Sunday 03:00"}, headers=admin, follow_redirects=False
    )
    assert made.status_code == 303
    listed = client.get("/agent/drills", headers=admin).text
    assert "media network cn-east" in listed  # where the plan pages
    assert client.get("/agent/drills", headers=bearer(world.alice_token)).status_code in (403, 404)
