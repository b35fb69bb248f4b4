"""E-mail drills: the drill customer's mail goes over SMTP into the desk's real inbound listener (aiosmtpd), is
taken as the drill's by its one-time key, pages by the ticket alone, and nothing is mailed to the drill customer
(the desk's outgoing mail goes to a real aiosmtpd server, which receives a real customer's acknowledgement and
nothing for the drill's address). Runs on SQLite and PostgreSQL; the clock reads Saturday 03:00 in Shanghai."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from tests.drills.test_drills import ADMIN, _result, _support, _teams
from tests.incidents.incident_kit import Receiver, build, drain, worker
from tests.mail.mail_kit import AUTHSERV, DESK_ADDRESS, Outbox, customer_mail, smtp_send, unused_port
from tests.tenancy import build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.drills import service
from zhiban.drills.model import ticket_of_smtp_answer
from zhiban.drills.store import DrillRow
from zhiban.features import load_hooks
from zhiban.identity.service import principal_of
from zhiban.identity.store import PersonRow
from zhiban.incidents import service as incidents
from zhiban.incidents.store import IncidentRow
from zhiban.mail.inbound import InboundListener, start_inbound
from zhiban.mail.store import HeldMailRow, MailMessageRow
from zhiban.notify import service as notify
from zhiban.notify.store import NotificationRow
from zhiban.reports.queries import Scope, ticket_facts
from zhiban.tickets import service as tickets
from zhiban.tickets.store import TicketRow

pytestmark = pytest.mark.usefixtures("allow_loopback_egress")


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Outbox]:
    """The desk's outgoing mail server: a real aiosmtpd set as ZHIBAN_SMTP_URL."""
    box = Outbox(port=unused_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    monkeypatch.setenv("ZHIBAN_SMTP_URL", f"smtp://127.0.0.1:{box.port}?from={DESK_ADDRESS}&timeout=5")
    get_settings.cache_clear()
    try:
        yield box
    finally:
        controller.stop()
        get_settings.cache_clear()


@pytest.fixture
def inbound(desk: Desk) -> Iterator[InboundListener]:
    """The desk's real inbound listener on a free port, where e-mail drills send their mail."""
    desk.settings = desk.settings.model_copy(update={"mail_authserv_id": AUTHSERV})  # the real customer's MTA
    listener = start_inbound(desk, host="127.0.0.1", port=unused_port())
    service.configure_mail(host="127.0.0.1", port=listener.port, to=DESK_ADDRESS)
    try:
        yield listener
    finally:
        listener.stop()


def test_smtp_answers_name_the_ticket_or_what_broke() -> None:
    assert ticket_of_smtp_answer(250, "2.0.0 created (ticket #12)") == 12
    assert ticket_of_smtp_answer(250, "2.0.0 duplicate (ticket #12)") == 12
    held = ticket_of_smtp_answer(250, "2.0.0 held for review by an agent")
    assert isinstance(held, str) and held.startswith("intake failed: the desk held the drill's mail")
    refused = ticket_of_smtp_answer(550, "5.7.1 the sender is not a customer user of this desk")
    assert refused == (
        "intake failed: the inbound mail listener answered 550 5.7.1 the sender is not a customer user of this desk"
    )


def test_an_email_drill_files_through_the_listener_pages_and_never_mails_the_drill_customer(
    desk: Desk, inbound: InboundListener, outbox: Outbox
) -> None:
    load_hooks()
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    receiver = Receiver(clock_now=clock.now)
    with receiver.running():
        kit = build(desk, receiver.url)
        notify.set_channel_deps(None)  # mail leaves the desk for the real SMTP server
        world = build_world(desk)
        _teams(desk)
        _support(desk, "enterprise", "standby", kit.service)
        with desk.transaction() as s:
            drill_id = service.schedule_drill(
                s, clock, ADMIN, plan="enterprise", at="Sunday 03:00", window_minutes=60, channel="email"
            ).id
            assert s.get(DrillRow, drill_id).channel == "email"  # type: ignore[union-attr]
        w = worker(desk)
        clock.set(datetime(2026, 11, 21, 19, tzinfo=UTC))
        drain(w)  # the drill mails the listener; the ticket pages the primary on its own
        with desk.transaction() as s:
            row = s.get(DrillRow, drill_id)
            assert row is not None and row.state == "running" and row.ticket_id and row.incident_id
            assert row.intake_key is None  # the one-time key is spent
            ticket = s.get(TicketRow, row.ticket_id)
            assert ticket is not None and ticket.channel == "email" and ticket.priority == "P1"
            assert ticket.subject == f"[DRILL 演练] {drill_id}: viewers cannot join rooms"
            incident = s.get(IncidentRow, row.incident_id)
            assert incident is not None and incident.ticket_id == ticket.id
            inbound_rows = s.scalars(select(MailMessageRow).where(MailMessageRow.ticket_id == ticket.id)).all()
            assert [(m.direction, m.address) for m in inbound_rows] == [
                ("in", "zhiban-drill-enterprise@drills.zhiban.invalid")
            ]  # the drill's mail came in; no acknowledgement went out
            ticket_id, incident_id = ticket.id, incident.id
            primary = principal_of(s.get(PersonRow, kit.primary))  # type: ignore[arg-type]
        assert len(receiver.bodies) == 1 and "[DRILL" in str(receiver.bodies[0])
        # A real customer's mail at the same hour is acknowledged by the same outgoing server: it works.
        real = customer_mail("alice@liveco.test", "Rooms stutter", "Since 02:55.", message_id="<r1@liveco.test>")
        assert smtp_send(inbound.port, real, mail_from="alice@liveco.test").code == 250
        clock.advance(timedelta(minutes=3))
        with desk.transaction() as s:
            incidents.acknowledge(s, clock, primary, incident_id)
        clock.advance(timedelta(minutes=4))
        with desk.transaction() as s:
            tickets.add_comment(s, clock, primary, ticket_id, body="Looking at cn-east now.")
        drain(w)
        clock.advance(timedelta(minutes=60))
        drain(w)
        result = _result(desk, drill_id)
        checks = {c["name"]: c["actual_seconds"] for c in result["checks"]}
        assert checks == {"page": 0, "acknowledge": 180, "first_response": 420}
        assert result["passed"] is True and result["broke"] is None, result["problems"]
        mailed = [str(m["To"]) for m in outbox.received]
        assert "alice@liveco.test" in mailed, mailed  # the real customer's acknowledgement went out …
        assert not any("drills.zhiban.invalid" in to for to in mailed), mailed  # … and nothing to the drill's
        with desk.transaction() as s:
            assert s.get(TicketRow, ticket_id).status == "solved"  # type: ignore[union-attr]
            outbound = select(func.count()).where(
                MailMessageRow.ticket_id == ticket_id, MailMessageRow.direction == "out"
            )
            assert s.scalar(outbound) == 0
            customer_ids = select(PersonRow.id).where(PersonRow.role == "customer")
            assert s.scalar(select(func.count()).where(NotificationRow.person_id.in_(customer_ids))) == 0
            scope = Scope(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
            assert all(f.ticket_id != ticket_id for f in ticket_facts(s, scope, as_of=clock.now()))
        assert world.liveco  # the real customer's world stood beside the drill


def test_a_drill_mark_without_its_key_is_held_and_a_listener_off_is_the_broken_step(
    desk: Desk, inbound: InboundListener
) -> None:
    load_hooks()
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    kit = build(desk)
    _support(desk, "enterprise", "standby", kit.service)
    with desk.transaction() as s:
        drill = service.schedule_drill(
            s, clock, ADMIN, plan="enterprise", at="03:30", window_minutes=30, channel="email"
        )
        drill_id = drill.id
        service.drill_customer(s, clock, "enterprise", "Asia/Shanghai")
        drill.state, drill.intake_key = "filing", service._digest("right-key")  # as the drill's first step leaves it
    sender = "zhiban-drill-enterprise@drills.zhiban.invalid"
    for n, mark in enumerate((f"{drill_id}; key=wrong-key", f"{drill_id[:-1]}x; key=right-key", "nonsense")):
        forged = customer_mail(sender, "[P1] wake up", "forged", message_id=f"<f{n}@x.test>", authenticated=False,
                               X_Zhiban_Drill=mark)  # fmt: skip
        answer = smtp_send(inbound.port, forged, mail_from=sender)
        assert answer.code == 250 and "held" in answer.text  # not the drill's: held for an agent, files nothing
    with desk.transaction() as s:
        assert s.scalar(select(func.count()).select_from(HeldMailRow)) == 3
        assert s.scalar(select(func.count()).select_from(TicketRow)) == 0
        s.get(DrillRow, drill_id).state = "scheduled"  # type: ignore[union-attr]
    # The listener off: the drill says the intake broke and files nothing.
    service.configure_mail(host="127.0.0.1", port=0, to=DESK_ADDRESS)
    w = worker(desk)
    clock.advance(timedelta(minutes=30))
    drain(w)
    down = _result(desk, drill_id)
    assert down["broke"] == "intake" and down["problems"] == [
        "intake failed: the inbound mail listener is off (ZHIBAN_INBOUND_SMTP_PORT=0)"
    ]
    with desk.transaction() as s:
        late = service.schedule_drill(
            s, clock, ADMIN, plan="enterprise", at="04:30", window_minutes=30, channel="email"
        )
        late_id = late.id
    service.configure_mail(host="127.0.0.1", port=unused_port(), to=DESK_ADDRESS)  # nothing listens there
    clock.advance(timedelta(hours=1))
    drain(w)
    assert _result(desk, late_id)["problems"][0].startswith("intake failed: the inbound mail listener at 127.0.0.1:")
