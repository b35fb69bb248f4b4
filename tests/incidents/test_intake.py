"""Group commit of Events v2 alerts: a batch has the outcome of its events applied one by one, on both databases."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.incidents.incident_kit import Receiver, build, drain, trigger, worker
from zhiban.desk import Desk
from zhiban.engine.store import Job
from zhiban.incidents import integrations, service
from zhiban.incidents.intake import EventsIntake
from zhiban.incidents.model import AlertEvent, EventRejected, parse_events_v2
from zhiban.incidents.store import AlertRow, EscalationStepRow, IncidentEventRow, IncidentRow
from zhiban.notify.store import NotificationRow

# The tests' webhook receivers listen on 127.0.0.1, which only an allowlist lets zhiban reach.
pytestmark = pytest.mark.usefixtures("allow_loopback_egress")


def _parsed(doc: dict[str, Any]) -> tuple[str, AlertEvent]:
    return parse_events_v2(doc, "generated-key")


def _alerts(desk: Desk) -> dict[str, tuple[int, str | None, str]]:
    """dedup key + status -> (event_count, open_key, incident id) of every alert."""
    with desk.transaction() as s:
        rows = s.execute(
            select(AlertRow.dedup_key, AlertRow.status, AlertRow.event_count, AlertRow.open_key, AlertRow.incident_id)
        ).all()
    return {f"{r[0]}/{r[1]}": (r[2], r[3], r[4]) for r in rows}


def test_a_batch_folds_repeats_and_opens_each_new_key_once(desk: Desk) -> None:
    world = build(desk)
    key = world.integration_key
    with desk.transaction() as s:
        integrations.receive_events_v2(s, desk.clock, trigger(key, "edge-07"))
    batch = [_parsed(trigger(key, k)) for k in ["edge-07", "edge-08", "edge-07", "edge-09", "edge-08", "edge-07"]]
    with desk.transaction() as s:
        outcomes = integrations.receive_events_v2_batch(s, desk.clock, batch)
    assert outcomes == [None] * 6
    alerts = _alerts(desk)
    # edge-07 was open before the batch: 1 + 3 repeats; the new keys count every one of their events.
    assert {k: v[0] for k, v in alerts.items()} == {
        "edge-07/triggered": 4,
        "edge-08/triggered": 2,
        "edge-09/triggered": 1,
    }
    with desk.transaction() as s:
        incidents = list(s.scalars(select(IncidentRow).order_by(IncidentRow.number)))
        assert [i.number for i in incidents] == [1, 2, 3]
        assert [i.alert_count for i in incidents] == [1, 1, 1]
        assert len({alerts[f"{k}/triggered"][2] for k in ("edge-07", "edge-08", "edge-09")}) == 3
        # Each new incident has its timeline start, its first escalation step and that step's timer.
        triggered = s.scalar(
            select(func.count()).select_from(IncidentEventRow).where(IncidentEventRow.kind == "triggered")
        )
        assert triggered == 3
        steps = list(s.scalars(select(EscalationStepRow).where(EscalationStepRow.state == "scheduled")))
        assert sorted(step.incident_id for step in steps) == sorted(i.id for i in incidents)
        timers = s.scalar(select(func.count()).select_from(Job).where(Job.kind == service.ESCALATE_JOB))
        assert timers == 3


def test_a_resolve_in_the_middle_of_a_batch_sees_the_triggers_before_it(desk: Desk) -> None:
    world = build(desk)
    key = world.integration_key
    resolve = {"routing_key": key, "event_action": "resolve", "dedup_key": "edge-07"}
    batch = [
        _parsed(trigger(key, "edge-07")),
        _parsed(trigger(key, "edge-07")),
        _parsed(resolve),
        _parsed(trigger(key, "edge-07")),
        _parsed(trigger("f" * 32, "edge-07")),  # no such integration: refused, the rest is applied
    ]
    with desk.transaction() as s:
        outcomes = integrations.receive_events_v2_batch(s, desk.clock, batch)
    assert outcomes[:4] == [None] * 4
    assert isinstance(outcomes[4], EventRejected)
    alerts = _alerts(desk)
    assert alerts["edge-07/resolved"][:2] == (2, None)
    assert alerts["edge-07/triggered"][:2] == (1, "edge-07")
    with desk.transaction() as s:
        statuses = list(s.scalars(select(IncidentRow.status).order_by(IncidentRow.number)))
    assert statuses == ["resolved", "triggered"]


def test_intake_commits_concurrent_requests_together_and_pages(desk: Desk) -> None:
    receiver = Receiver(clock_now=desk.clock.now)
    with receiver.running():
        world = build(desk, receiver.url)
        key = world.integration_key
        intake = EventsIntake(desk.sessions, desk.clock, idle_exit=0.5)
        docs = [trigger(key, f"edge-{i % 10}") for i in range(60)] + [trigger("0" * 32, "x")]

        async def send_all() -> list[BaseException | None]:
            async def one(doc: dict[str, Any]) -> BaseException | None:
                try:
                    await intake.submit(*_parsed(doc))
                except EventRejected as exc:
                    return exc
                return None

            return list(await asyncio.gather(*(one(d) for d in docs)))

        # A thread of its own: a Playwright test on this xdist worker may have left an event loop in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            results = pool.submit(asyncio.run, send_all()).result()
        assert results[:60] == [None] * 60 and isinstance(results[60], EventRejected)
        # Every accepted event is committed when its submit returns, in fewer transactions than events.
        assert intake.events == 61 and intake.batches < 61
        alerts = _alerts(desk)
        assert sorted(v[0] for v in alerts.values()) == [6] * 10
        drain(worker(desk))
        with desk.transaction() as s:
            paged = s.scalar(select(func.count(func.distinct(NotificationRow.subject_id))))
        assert paged == 10
        assert len(receiver.keys) == 10 and max(receiver.keys.values()) == 1


def test_intake_keeps_its_connection_and_survives_losing_it(desk: Desk) -> None:
    world = build(desk)
    key = world.integration_key
    intake = EventsIntake(desk.sessions, desk.clock, idle_exit=5)

    def send(dedup: str) -> None:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, intake.submit(*_parsed(trigger(key, dedup)))).result()

    send("edge-07")
    first = intake._connection
    send("edge-07")
    assert first is not None and intake._connection is first  # no checkout (and no ping) per batch
    # The database drops the writer's connection (a restart, a failover): that batch fails and is retried on a
    # fresh connection, nothing is lost.
    if desk.db.dialect.name == "postgresql":
        pid = first.exec_driver_sql("select pg_backend_pid()").scalar()
        first.rollback()
        with desk.db.connect() as other:
            other.exec_driver_sql(f"select pg_terminate_backend({int(str(pid))})")
    else:
        first.invalidate()  # SQLite: the same Connection object reconnects by itself
    send("edge-07")
    send("edge-08")
    if desk.db.dialect.name == "postgresql":
        assert intake._connection is not None and intake._connection is not first
    alerts = _alerts(desk)
    assert (alerts["edge-07/triggered"][0], alerts["edge-08/triggered"][0]) == (3, 1)
