"""Off hours, an SLA warning or breach of a ticket the plan pages for reaches the engineer on call through their
paging rules' channels (SMS through a local server speaking Twilio's API, a Feishu robot on a local server), once
per notice; a rule's delayed call is dropped once the notice is read; in hours, and for a priority the plan does
not page for, nothing but mail and the in-app line. SQLite and PostgreSQL; the clock starts Saturday 03:00
Asia/Shanghai (LiveCo's Enterprise plan on standby, P1 first response in 15 minutes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.duty.test_duty_notices import BREACHED, WARNED, _assign, _sla_notices, _token
from tests.duty.test_on_duty import _file, _setup
from tests.incidents.incident_kit import drain, worker
from tests.notify.notify_fakes import ProviderServer, feishu_bot, provider_server, twilio_api
from tests.tenancy import bearer
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.notify import inbox
from zhiban.notify import service as notify
from zhiban.notify.model import Notice
from zhiban.notify.store import InboxRow, NotificationRow
from zhiban.sla import notices
from zhiban.sla import service as sla
from zhiban.sla.store import ClockRow
from zhiban.tickets import service as tickets

pytestmark = pytest.mark.usefixtures("allow_loopback_egress")  # the fake providers listen on 127.0.0.1

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token"
PHONE = "+8613800138000"


@pytest.fixture
def phones(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """A local server speaking Twilio's REST API, set as ZHIBAN_TWILIO_URL."""
    with provider_server(twilio_api(SID, TOKEN)) as server:
        host = server.url.removeprefix("http://")
        monkeypatch.setenv("ZHIBAN_TWILIO_URL", f"twilio://{SID}:{TOKEN}@{host}?from=%2B15005550006&scheme=http")
        get_settings.cache_clear()
        yield server
    get_settings.cache_clear()


@pytest.fixture
def robot() -> Iterator[ProviderServer]:
    with provider_server(feishu_bot(None)) as server:
        yield server


def _paging_rules(desk: Desk, person_id: str, robot_url: str) -> None:
    """SMS and the Feishu robot at once, a phone call 5 minutes later (as an on-call engineer sets them)."""
    notify.set_channel_deps(None)  # the channels as configured: Twilio above, robots over HTTP, mail logged
    with desk.transaction() as s:
        for channel, config, delay in (
            ("sms", {"to": PHONE}, 0),
            ("feishu", {"webhook_url": f"{robot_url}/open-apis/bot/v2/hook/oncall"}, 0),
            ("voice", {"to": PHONE}, 5),
        ):
            method = notify.add_contact_method(s, desk.clock, person_id=person_id, channel=channel, config=config)
            notify.add_notification_rule(
                s, desk.clock, person_id=person_id, contact_method_id=method.id, delay_minutes=delay
            )


def _sla_pages(desk: Desk, person_id: str | None = None) -> list[tuple[str, str, str]]:
    """(kind, channel, state) of the SLA notices' messages through paging rules."""
    with desk.sessions() as s:
        query = select(NotificationRow).where(NotificationRow.subject_kind == notices.PAGE_SUBJECT)
        if person_id is not None:
            query = query.where(NotificationRow.person_id == person_id)
        return sorted((r.kind, r.channel, r.state) for r in s.scalars(query))


def _sms(phones: ProviderServer) -> list[str]:
    """The SLA notices' text messages (the ticket's own page goes by SMS too)."""
    texts = [parse_qs(r.body.decode())["Body"][0] for r in phones.received if r.path.endswith("/Messages.json")]
    return [t for t in texts if t.startswith("[SLA")]


def _im(robot: ProviderServer) -> list[str]:
    return [b for b in (r.body.decode() for r in robot.received) if "SLA" in b]


def test_off_hours_the_engineer_on_call_gets_the_warning_by_sms_and_im_once(
    client: TestClient, desk: Desk, clock: FrozenClock, phones: ProviderServer, robot: ProviderServer
) -> None:
    world, primary = _setup(client, desk)
    _paging_rules(desk, primary, robot.url)
    _paging_rules(desk, world.agent_id, robot.url)  # the assignee has paging rules too, but is not on call
    ticket = _file(client, world.alice_token, "P1")
    _assign(client, world, ticket["id"], world.agent_id)
    w = worker(desk)
    clock.advance(WARNED)
    drain(w)
    assert _sla_notices(desk, ticket["id"], "sla_warning") == {primary: "on_call", world.agent_id: "assignee"}
    assert _sla_pages(desk) == [
        ("sla.warning.page", "feishu", "sent"),
        ("sla.warning.page", "sms", "sent"),
        ("sla.warning.page", "voice", "pending"),  # its rule waits 5 minutes
    ]
    assert _sla_pages(desk, world.agent_id) == []  # the assignee is told by mail and in the inbox only
    texts = _sms(phones)
    assert len(texts) == 1 and f"#{ticket['id']}" in texts[0] and f"/tickets/{ticket['id']}" in texts[0]
    assert "直播卡顿 stream stutters" in texts[0]  # the ticket's subject (a drill's says so there)
    assert len(_im(robot)) == 1 and f"#{ticket['id']}" in _im(robot)[0]
    # The warning's timer run again (a job retry, a second worker): nobody is told twice, nothing queued again.
    with desk.transaction() as s:
        summary = tickets.summary(s, ticket["id"])
        row = s.scalars(select(ClockRow).where(ClockRow.ticket_id == ticket["id"], ClockRow.metric == "first_response"))
        assert summary is not None and sla.notify(s, clock, summary, row.one(), "warning") == []
        note = s.scalar(select(InboxRow).where(InboxRow.person_id == primary, InboxRow.kind == "sla_warning"))
        assert note is not None
        person = identity.person(s, primary)
        assert person is not None
        assert notices.queue_pages(s, clock, inbox_notice(s, note.id), person, summary.subject) == 0
        warning_id = note.id
    drain(w)
    assert len(_sms(phones)) == 1 and len(_im(robot)) == 1
    # The engineer reads the warning: the call its rule would make 5 minutes later is not made.
    read = client.post(f"/api/v1/inbox/{warning_id}/read", headers=bearer(_token(desk, primary)))
    assert read.status_code == 200, read.text
    clock.advance(timedelta(minutes=5))
    drain(w)
    assert ("sla.warning.page", "voice", "cancelled") in _sla_pages(desk, primary)
    calls = [parse_qs(r.body.decode())["Twiml"][0] for r in phones.received if r.path.endswith("/Calls.json")]
    assert not any("SLA" in twiml for twiml in calls)
    # The breach is a notice of its own: paged again, once.
    clock.advance(BREACHED - WARNED)
    drain(w)
    assert len(_sms(phones)) == 2 and "[SLA breach]" in _sms(phones)[1]
    assert len(_im(robot)) == 2


def inbox_notice(s: Session, notice_id: int) -> Notice:
    found = inbox.get(s, notice_id)
    assert found is not None
    return found


def test_in_hours_and_for_priorities_that_do_not_page_nothing_but_mail(
    client: TestClient, desk: Desk, clock: FrozenClock, phones: ProviderServer, robot: ProviderServer
) -> None:
    world, primary = _setup(client, desk)
    _paging_rules(desk, primary, robot.url)
    w = worker(desk)
    # 03:00, but P3: standby pages P1 and P2 only. The engineer on call is told by mail and in-app, not paged.
    quiet = _file(client, world.alice_token, "P3")
    _assign(client, world, quiet["id"], world.agent_id)
    clock.advance(timedelta(hours=3, minutes=30))  # P3's first response (4 h, 7x24) warns at 3 h
    drain(w)
    assert _sla_notices(desk, quiet["id"], "sla_warning").get(primary) == "on_call"
    assert _sla_pages(desk) == []
    # Monday 10:00 in Shanghai: business hours. A P1's warning goes to the assignee and the dedicated contact.
    clock.advance(timedelta(days=2, hours=3, minutes=30))
    ticket = _file(client, world.alice_token, "P1")
    _assign(client, world, ticket["id"], primary)  # even the on-call engineer, as assignee, is not paged by day
    clock.advance(WARNED)
    drain(w)
    assert _sla_notices(desk, ticket["id"], "sla_warning") == {primary: "assignee"}
    assert _sla_pages(desk) == [] and _sms(phones) == [] and _im(robot) == []
