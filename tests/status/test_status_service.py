"""Status pages on real tables: visibility, components and uptime, the Atom feed, and subscriber notices."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.incidents.incident_kit import Receiver, drain
from tests.tenancy import World, build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import NotFound
from zhiban.desk import Desk
from zhiban.drills.store import DrillRow
from zhiban.engine import Worker
from zhiban.features import load_hooks
from zhiban.handlers import desk_registry
from zhiban.identity.model import Principal, Role
from zhiban.identity.store import OrganizationRow
from zhiban.incidents import service as incidents
from zhiban.notify import service as notify
from zhiban.notify.registry import ChannelDeps
from zhiban.notify.store import NotificationRow
from zhiban.status import service

ATOM = "{http://www.w3.org/2005/Atom}"
STAFF = Principal(person_id="staff", role=Role.ADMIN, organization_id=None)


def _world(desk: Desk) -> tuple[World, str, str]:
    """A published platform incident (edge node in cn-east, no organization) and a LiveCo-only one, both open."""
    load_hooks()
    world = build_world(desk)
    clock = desk.clock
    with desk.transaction() as s:
        edge = incidents.create_service(s, clock, name="media edge")
        app = incidents.create_service(s, clock, name="liveco app", organization_id=world.liveco)
        # Published by its mapping: pages name it by its public title, never its alert's.
        service.publish_service(s, clock, STAFF, edge.id, component="cn-east", title="Packet loss in cn-east")
        public = incidents.open_incident(s, clock, edge, title="sh-edge-07 packet loss in cn-east", severity="critical")
        private = incidents.open_incident(s, clock, app, title="LiveCo room joins failing", severity="error")
        return world, public.id, private.id


def _org(desk: Desk, org_id: str) -> OrganizationRow:
    with desk.transaction() as s:
        org = s.get(OrganizationRow, org_id)
        assert org is not None
        return org


def test_pages_show_what_each_audience_may_see(desk: Desk) -> None:
    world, _, _ = _world(desk)
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(hours=2))
    with desk.transaction() as s:
        page = service.build_page(s, clock, None, lang="en", tz="Asia/Shanghai")
        assert [i.title for i in page.current] == ["Packet loss in cn-east"]
        (incident,) = page.current
        # The component is the mapping's.
        assert incident.components == ("cn-east",) and incident.severity == "critical"
        assert [u.status for u in incident.updates] == ["investigating"]
        bars = {c.name: c.uptime.bars[-1] for c in page.components}
        # Today (Asia/Shanghai) began at 16:00 UTC; the outage has run 2 h of the 5 h so far: 60 % uptime.
        assert bars["cn-east"].worst_severity == "critical" and round(bars["cn-east"].uptime_pct or 0, 6) == 60.0
        assert bars["cn-north"].uptime_pct == 100.0
        liveco = service.build_page(s, clock, s.get(OrganizationRow, world.liveco), lang="en", tz="Asia/Shanghai")
        assert {i.title for i in liveco.current} == {"Packet loss in cn-east", "LiveCo room joins failing"}
        classmate = service.build_page(s, clock, s.get(OrganizationRow, world.classmate), lang="zh", tz="UTC")
        assert [i.title for i in classmate.current] == ["Packet loss in cn-east"]
        assert classmate.current[0].updates[0].body.startswith("我们正在调查")


def test_feeds_parse_and_private_feed_needs_its_token(desk: Desk) -> None:
    world, public_id, _ = _world(desk)
    clock = desk.clock
    with desk.transaction() as s:
        service.post_update(s, clock, STAFF, public_id, status="identified", body="Rerouting around sh-edge-07.")
        doc = ET.fromstring(service.feed(s, clock, None, lang="en", self_url="http://127.0.0.1:8000/status/feed.atom"))
        entries = doc.findall(f"{ATOM}entry")
        assert [e.findtext(f"{ATOM}title") for e in entries] == ["[ongoing] Packet loss in cn-east"]
        assert "Rerouting around sh-edge-07." in (entries[0].findtext(f"{ATOM}content") or "")
        liveco = s.get(OrganizationRow, world.liveco)
        assert liveco is not None
        token = service.feed_token(s, clock, liveco)
        assert service.feed_token(s, clock, liveco) == token  # stable once made
        org = service.organization_by_feed_token(s, "liveco", token)
        private = ET.fromstring(service.feed(s, clock, org, lang="en", self_url="http://127.0.0.1:8000/x"))
        assert len(private.findall(f"{ATOM}entry")) == 2
        for slug, wrong in (("liveco", "nope"), ("classmate", token)):
            with pytest.raises(NotFound):
                service.organization_by_feed_token(s, slug, wrong)


def test_each_update_reaches_each_subscriber_once(desk: Desk, allow_loopback_egress: None) -> None:
    world, public_id, private_id = _world(desk)
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    notify.set_channel_deps(ChannelDeps(clock=clock))
    worker = Worker(desk.sessions, desk_registry(), clock)
    receiver = Receiver(secret="status-hook-secret-123", clock_now=clock.now)
    with receiver.running():
        with desk.transaction() as s:
            alice = Principal(person_id=world.alice_id, role=Role.CUSTOMER, organization_id=world.liveco)
            hook = service.subscribe(s, clock, alice, organization_slug="liveco", webhook_url=receiver.url,
                                     webhook_secret="status-hook-secret-123")  # fmt: skip
            mail = service.subscribe(s, clock, None, email="ops@viewer.test")
            assert hook.confirmed_at is not None and mail.confirmed_at is None
            mail_token = mail.token
        drain(worker)
        with desk.transaction() as s:
            # The e-mail subscriber was asked to confirm; nothing else went out yet.
            (confirm,) = s.scalars(select(NotificationRow).where(NotificationRow.subject_id == mail.id))
            assert confirm.channel == "email" and "/status/subscriptions/" in str(confirm.message["text"])
            service.post_update(s, clock, STAFF, private_id, status="identified", body="A bad config push.")
        drain(worker)
        drain(worker)  # a rerun sends nothing twice
        assert len(receiver.bodies) == 1 and receiver.bodies[0]["subject"] == "[Identified] LiveCo room joins failing"
        with desk.transaction() as s:
            service.confirm(s, clock, mail_token)
            service.post_update(s, clock, STAFF, public_id, status="monitoring", body="Traffic moved to sh-edge-03.")
        drain(worker)
        # A platform update reaches LiveCo's webhook and the now confirmed e-mail; the private one did not reach mail.
        assert len(receiver.bodies) == 2 and receiver.bodies[1]["metadata"]["status"] == "monitoring"
        with desk.transaction() as s:
            mails = list(s.scalars(select(NotificationRow).where(NotificationRow.subject_id == mail.id)))
            assert sorted(m.state for m in mails) == ["sent", "sent"]
            incidents.resolve(s, clock, STAFF, public_id)
        clock.advance(timedelta(minutes=2))  # the scan runs once a minute
        drain(worker)
        drain(worker)
        assert [b["metadata"]["status"] for b in receiver.bodies] == ["identified", "monitoring", "resolved"]
        assert all(count == 1 for count in receiver.keys.values()) and receiver.bad_signatures == 0
        with desk.transaction() as s:
            service.unsubscribe(s, clock, mail_token)
            service.post_update(s, clock, STAFF, public_id, status="resolved", body="Post-mortem to follow.")
        drain(worker)
        with desk.transaction() as s:
            assert len(list(s.scalars(select(NotificationRow).where(NotificationRow.subject_id == mail.id)))) == 3
        assert len(receiver.bodies) == 4


def test_drills_never_show_nor_notify(desk: Desk) -> None:
    _, public_id, _ = _world(desk)
    clock = desk.clock
    with desk.transaction() as s:
        s.add(DrillRow(plan="enterprise", service_name="media edge", at_label="03:00", tz="UTC",
                       scheduled_at=clock.now(), window_minutes=60, state="running", incident_id=public_id,
                       created_at=clock.now()))  # fmt: skip
        s.flush()
        page = service.build_page(s, clock, None, lang="en", tz="UTC")
        assert page.current == [] and all(c.uptime.uptime_pct == 100.0 for c in page.components)
        service.post_update(s, clock, STAFF, public_id, status="identified", body="drill")
        assert not s.scalars(select(NotificationRow)).first()
