"""The paging chain on both databases: alerts fold into incidents, steps page in order, ack stops paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.incidents.incident_kit import Receiver, build, drain, trigger, worker
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import InvalidInput
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.identity.service import principal_of
from zhiban.identity.store import PersonRow
from zhiban.incidents import integrations, service
from zhiban.incidents.audit import overdue_steps
from zhiban.incidents.model import EventRejected, make_ack_token, read_ack_token
from zhiban.incidents.store import AlertRow, EscalationStepRow, IncidentRow
from zhiban.notify import service as notify
from zhiban.notify.store import NotificationRow

# The tests' webhook receivers listen on 127.0.0.1, which only an allowlist lets zhiban reach.
pytestmark = pytest.mark.usefixtures("allow_loopback_egress")


def _incidents(desk: Desk) -> list[IncidentRow]:
    with desk.transaction() as s:
        rows = list(s.scalars(select(IncidentRow).order_by(IncidentRow.number)))
        s.expunge_all()
        return rows


def _notifications(desk: Desk) -> list[NotificationRow]:
    with desk.transaction() as s:
        rows = list(s.scalars(select(NotificationRow).order_by(NotificationRow.created_at, NotificationRow.id)))
        s.expunge_all()
        return rows


def test_duplicates_fold_and_resolve_closes(desk: Desk) -> None:
    world = build(desk)
    with desk.transaction() as s:
        for _ in range(3):
            integrations.receive_events_v2(s, desk.clock, trigger(world.integration_key, "edge-07"))
        integrations.receive_events_v2(s, desk.clock, trigger(world.integration_key, "edge-08"))
    incidents = _incidents(desk)
    assert [i.number for i in incidents] == [1, 2]
    with desk.transaction() as s:
        alert = s.scalar(select(AlertRow).where(AlertRow.dedup_key == "edge-07"))
        assert alert is not None and alert.event_count == 3
        integrations.receive_events_v2(
            s, desk.clock, {"routing_key": world.integration_key, "event_action": "resolve", "dedup_key": "edge-07"}
        )
    assert [i.status for i in _incidents(desk)] == ["resolved", "triggered"]
    # After a resolve the same key opens a new incident, as Events v2 does.
    with desk.transaction() as s:
        integrations.receive_events_v2(s, desk.clock, trigger(world.integration_key, "edge-07"))
    assert len(_incidents(desk)) == 3


def test_events_v2_refuses_bad_events_with_every_reason(desk: Desk) -> None:
    world = build(desk)
    with desk.transaction() as s, pytest.raises(EventRejected) as caught:
        integrations.receive_events_v2(
            s,
            desk.clock,
            {"routing_key": world.integration_key, "event_action": "trigger", "payload": {"severity": "bad"}},
        )
    text = " ".join(caught.value.errors)
    assert "payload.summary" in text and "payload.source" in text and "payload.severity" in text
    with desk.transaction() as s, pytest.raises(EventRejected):
        integrations.receive_events_v2(s, desk.clock, {"routing_key": "nope" * 4, "event_action": "resolve"})


def test_steps_page_in_order_and_ack_stops_them(desk: Desk, clock: FrozenClock) -> None:
    with Receiver().running() as receiver:
        receiver.clock_now = clock.now
        world = build(desk, receiver.url)
        with desk.transaction() as s:
            integrations.receive_events_v2(s, clock, trigger(world.integration_key, "edge-07"))
        w = worker(desk)
        drain(w)
        pages = _notifications(desk)
        assert [(n.person_id, n.state) for n in pages] == [(world.primary, "sent")]
        clock.advance(timedelta(minutes=5))
        drain(w)
        assert [(n.person_id, n.state) for n in _notifications(desk)] == [
            (world.primary, "sent"),
            (world.secondary, "sent"),
        ]
        incident = _incidents(desk)[0]
        with desk.transaction() as s:
            admin = principal_of(s.get(PersonRow, world.admin))
            service.acknowledge(s, clock, admin, incident.id)
        clock.advance(timedelta(minutes=30))  # the policy (no repeats) is exhausted; the ack timeout re-triggers
        drain(w)
        assert receiver.bad_signatures == 0
        # Each page went out once, under its own step key.
        assert all(count == 1 for count in receiver.keys.values()) and len(receiver.keys) >= 2
    with desk.transaction() as s:
        steps = list(s.scalars(select(EscalationStepRow).order_by(EscalationStepRow.id)))
        assert [(st.generation, st.step_no, st.state) for st in steps][:2] == [(0, 0, "done"), (0, 1, "done")]
        assert s.get(IncidentRow, incident.id).status == "triggered"  # re-triggered after 30 minutes unacknowledged
        assert any(st.generation == 1 for st in steps)


def test_ack_cancels_later_rules(desk: Desk, clock: FrozenClock) -> None:
    """Feishu at once, SMS at +2 min, voice at +5 min: acknowledging at +3 leaves voice unsent."""
    world = build(desk)
    with desk.transaction() as s:
        for channel, config, delay in (
            ("email", {"to": ["primary@vendor.test"]}, 0),
            ("sms", {"to": "+8613800138000"}, 2),
            ("voice", {"to": "+8613800138000"}, 5),
        ):
            method = notify.add_contact_method(s, clock, person_id=world.primary, channel=channel, config=config)
            notify.add_notification_rule(
                s, clock, person_id=world.primary, contact_method_id=method.id, delay_minutes=delay
            )
        integrations.receive_events_v2(s, clock, trigger(world.integration_key, "edge-07"))
    w = worker(desk)
    drain(w)
    clock.advance(timedelta(minutes=3))
    drain(w)
    with desk.transaction() as s:
        incident = s.scalars(select(IncidentRow)).one()
        service.acknowledge(s, clock, principal_of(s.get(PersonRow, world.admin)), incident.id)
    clock.advance(timedelta(minutes=10))
    drain(w)
    states = {n.channel: n.state for n in _notifications(desk)}
    # No SMS provider is configured here: the SMS page fails permanently (and says so); voice never went.
    assert states == {"email": "sent", "sms": "failed", "voice": "cancelled"}


def test_low_urgency_waits_for_support_hours(desk: Desk, clock: FrozenClock) -> None:
    world = build(desk, urgency_rule="severity")
    with desk.transaction() as s:
        integrations.receive_events_v2(s, clock, trigger(world.integration_key, "disk", severity="warning"))
        step = s.scalars(select(EscalationStepRow)).one()
    # Saturday 03:00 in Shanghai: the page waits for Monday 23 November 2026, 09:00 Asia/Shanghai.
    assert step.due_at == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    drain(worker(desk))
    assert _notifications(desk) == []
    clock.set(datetime(2026, 11, 23, 1, 0, 1, tzinfo=UTC))
    drain(worker(desk))
    assert [n.person_id for n in _notifications(desk)] == [world.primary]


def test_team_round_robin_moves_per_incident(desk: Desk, clock: FrozenClock) -> None:
    world = build(desk)
    with desk.transaction() as s:
        team = identity.create_team(s, name="Network")
        for person in (world.primary, world.secondary):
            identity.add_team_member(s, team.id, person)
        policy = service.create_policy(
            s,
            clock,
            name="rr",
            levels=[{"delay_minutes": 5, "targets": [{"kind": "team", "ref": "Network", "round_robin": True}]}],
        )
        svc = service.create_service(s, clock, name="rr service", policy=policy.id)
        key = integrations.create_integration(s, clock, type_="events-v2", service_ref=svc.id).key
        integrations.receive_events_v2(s, clock, trigger(key, "a"))
        integrations.receive_events_v2(s, clock, trigger(key, "b"))
    drain(worker(desk))
    paged = [n.person_id for n in _notifications(desk)]
    assert sorted(paged) == sorted([world.primary, world.secondary])


def test_retry_with_backoff_then_sent(desk: Desk, clock: FrozenClock) -> None:
    with Receiver(status=[503]).running() as receiver:
        receiver.clock_now = clock.now
        world = build(desk, receiver.url)
        with desk.transaction() as s:
            integrations.receive_events_v2(s, clock, trigger(world.integration_key, "x"))
        w = worker(desk)
        drain(w)
        first = _notifications(desk)[0]
        assert first.state == "pending" and "503" in (first.last_error or "")
        clock.advance(timedelta(minutes=2))
        drain(w)
        assert _notifications(desk)[0].state == "sent"
        assert list(receiver.keys.values()) == [2]  # the same idempotency key both times


def test_rate_limit_makes_the_21st_robot_message_wait(desk: Desk, clock: FrozenClock) -> None:
    build(desk)
    with desk.transaction() as s:
        for i in range(21):
            message = notify.Message(subject=f"m{i}", text="t", idempotency_key=f"rl-{i}")
            notify.queue_message(
                s,
                clock,
                message=message,
                subject_kind="test",
                subject_id="x",
                channel="dingtalk",
                config={"webhook_url": "http://127.0.0.1:9/robot/send?access_token=abc"},
                due_at=clock.now(),
            )
        # Mark 20 as handed out just now, as if already sent within this minute.
        rows = list(s.scalars(select(NotificationRow).order_by(NotificationRow.idempotency_key)))
        for row in rows[:20]:
            row.state, row.handed_at = "sent", clock.now()
        waiting = rows[20]
        assert notify.rate_wait(s, waiting.rate_key, clock.now()) == timedelta(minutes=1)
        assert notify.rate_wait(s, waiting.rate_key, clock.now() + timedelta(seconds=61)) is None


def test_heartbeat_missed_raises_and_ping_resolves(desk: Desk, clock: FrozenClock) -> None:
    world = build(desk)
    with desk.transaction() as s:
        hb = integrations.create_integration(
            s, clock, type_="heartbeat", service_ref=world.service, heartbeat_seconds=60
        )
        integrations.ping(s, clock, hb.key)
    w = worker(desk)
    clock.advance(timedelta(seconds=30))
    with desk.transaction() as s:
        integrations.ping(s, clock, hb.key)  # re-arms: the first timer must not fire
    clock.advance(timedelta(seconds=45))
    drain(w)
    assert _incidents(desk) == []
    clock.advance(timedelta(seconds=30))
    drain(w)
    [incident] = _incidents(desk)
    assert incident.status == "triggered" and "missed" in incident.title
    with desk.transaction() as s:
        integrations.ping(s, clock, hb.key)
    assert _incidents(desk)[0].status == "resolved"


def test_alertmanager_groups_by_group_key_and_resolves(desk: Desk, clock: FrozenClock) -> None:
    world = build(desk)
    with desk.transaction() as s:
        am = integrations.create_integration(s, clock, type_="alertmanager", service_ref=world.service)

    def doc(status: str, fingerprints: list[str]) -> dict[str, object]:
        return {
            "version": "4",
            "groupKey": '{}:{alertname="EdgeLoss"}',
            "status": status,
            "receiver": "zhiban",
            "commonLabels": {"alertname": "EdgeLoss"},
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": "EdgeLoss", "instance": f"sh-edge-0{i}", "severity": "critical"},
                    "annotations": {"summary": f"loss on {fp}"},
                    "fingerprint": fp,
                    "startsAt": "2026-11-20T19:00:00Z",
                }
                for i, fp in enumerate(fingerprints)
            ],
        }

    with desk.transaction() as s:
        integrations.receive_alertmanager(s, clock, am.key, doc("firing", ["f1", "f2"]))
        integrations.receive_alertmanager(s, clock, am.key, doc("firing", ["f1", "f2", "f3"]))
    [incident] = _incidents(desk)
    assert incident.alert_count == 3
    with desk.transaction() as s:
        fps = sorted(s.scalars(select(AlertRow.fingerprint)))
        assert fps == ["f1", "f2", "f3"]
        integrations.receive_alertmanager(s, clock, am.key, doc("resolved", ["f1", "f2"]))
    assert _incidents(desk)[0].status == "triggered"  # f3 still firing
    with desk.transaction() as s:
        integrations.receive_alertmanager(s, clock, am.key, doc("resolved", ["f3"]))
    assert _incidents(desk)[0].status == "resolved"


def test_auditor_reports_steps_no_worker_fired(desk: Desk, clock: FrozenClock) -> None:
    world = build(desk)
    with desk.transaction() as s:
        integrations.receive_events_v2(s, clock, trigger(world.integration_key, "x"))
        # The first level was due at once: it paged within the trigger's own transaction.
        steps = {row.step_no: row for row in s.scalars(select(EscalationStepRow))}
        assert steps[0].state == "done" and steps[0].paged == [world.primary]
        assert steps[1].state == "scheduled"
        assert s.scalar(select(func.count()).select_from(NotificationRow)) == 1
        assert overdue_steps(s, clock) == []
    clock.advance(timedelta(minutes=8))  # the second level was due after 5 minutes; no worker ran
    with desk.transaction() as s:
        [late] = overdue_steps(s, clock)
        assert late.step_no == 1 and late.late_by == timedelta(minutes=3)
    drain(worker(desk))
    with desk.transaction() as s:
        assert overdue_steps(s, clock) == []


def test_customers_see_only_linked_incidents_without_notes(desk: Desk, clock: FrozenClock) -> None:
    world = build(desk)
    with desk.transaction() as s:
        org = identity.create_organization(s, clock, name="LiveCo", slug="liveco")
        other = identity.create_organization(s, clock, name="Other", slug="other")
        alice = principal_of(
            identity.create_person(
                s, clock, email="a@liveco.test", name="A", role=Role.CUSTOMER, organization_id=org.id
            )
        )
        bob = principal_of(
            identity.create_person(
                s, clock, email="b@other.test", name="B", role=Role.CUSTOMER, organization_id=other.id
            )
        )
        integrations.receive_events_v2(s, clock, trigger(world.integration_key, "x"))
        incident = s.scalars(select(IncidentRow)).one()
        staff = principal_of(s.get(PersonRow, world.admin))
        service.add_note(s, clock, staff, incident.id, "internal: suspect sh-edge-07")
        assert service.list_incidents(s, alice) == []
        from zhiban.tickets.service import create_ticket

        ticket = create_ticket(s, clock, alice, subject="stutter", body="video freezes", priority="P1")
        assert service.link_ticket(s, incident.id, ticket.id) is True
        assert service.link_ticket(s, incident.id, ticket.id) is False
        assert [i.id for i in service.open_incidents_for_org(s, org.id)] == [incident.id]
        view = service.get_incident(s, alice, incident.id)
        assert all(e.kind != "note" for e in view.timeline) and view.alerts == []
        assert "note" in {e.kind for e in service.get_incident(s, staff, incident.id).timeline}
        assert service.list_incidents(s, bob) == []
        from zhiban.core.errors import Forbidden, NotFound

        with pytest.raises(NotFound):
            service.get_incident(s, bob, incident.id)
        with pytest.raises(Forbidden):
            service.acknowledge(s, clock, alice, incident.id)


def test_ack_tokens_are_signed_and_expire(clock: FrozenClock) -> None:
    token = make_ack_token("k1", "inc", "person", clock.now() + timedelta(hours=1))
    assert read_ack_token("k1", token, clock.now()) == ("inc", "person")
    with pytest.raises(InvalidInput):
        read_ack_token("k2", token, clock.now())
    with pytest.raises(InvalidInput):
        read_ack_token("k1", token[:-2] + "xx", clock.now())
    with pytest.raises(InvalidInput, match="expired"):
        read_ack_token("k1", token, clock.now() + timedelta(hours=2))


def test_demo_integrations(desk: Desk, clock: FrozenClock) -> None:
    from zhiban.demo.seed import seed_demo

    with desk.transaction() as s:
        seed_demo(s, clock)
        made = integrations.seed_demo_integrations(s, clock)
        assert sorted(i.type for i in made) == ["alertmanager", "events-v2"]
        assert integrations.seed_demo_integrations(s, clock) == []
        policy = service.get_policy(s, integrations.DEMO_POLICY)
        emails = [s.get(PersonRow, level["targets"][0]["ref"]).email for level in policy.levels]
        assert emails == ["li.na@zhiban.demo", "admin@zhiban.demo"]
        assert s.scalar(select(func.count()).select_from(IncidentRow)) == 0
