"""On-call schedules in the desk's database (SQLite and PostgreSQL): edits, who is on call, gaps, the demo."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import func, select

from tests.oncall.oncall_kit import (
    ROTATION_START,
    Mailbox,
    admin_of,
    agent_of,
    daily_rotation,
    hourly,
    sh,
    smtp,
)
from tests.tenancy import build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.demo.seed import seed_demo
from zhiban.desk import Desk
from zhiban.engine import Worker, enqueue, list_jobs
from zhiban.identity.model import Principal, Role
from zhiban.identity.store import PersonRow
from zhiban.oncall import Layer, Override, Schedule, TurnUnit, service, who_is_on_call
from zhiban.oncall.jobs import registry
from zhiban.oncall.store import GapNoticeRow

__all__ = ["smtp"]  # the fixture, imported for pytest


def test_on_call_now_matches_the_model_across_a_partial_override(desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    # The admin covers four hours in the middle of the agent's Friday-to-Saturday turn.
    with desk.transaction() as s:
        service.add_override(
            s,
            desk.clock,
            agent_of(w),
            oc.schedule_id,
            person_id=w.admin_id,
            start=sh(2026, 11, 21, 1),
            end=sh(2026, 11, 21, 5),
        )
    # The same schedule built by hand, independent of the database.
    model = Schedule(
        "by-hand",
        "Asia/Shanghai",
        (Layer("daily", (w.agent_id, w.admin_id), ROTATION_START, 1, TurnUnit.DAY),),
        (Override(w.admin_id, sh(2026, 11, 21, 1), sh(2026, 11, 21, 5)),),
    )
    with desk.transaction() as s:
        for moment in hourly(sh(2026, 11, 19), 96):
            assert service.on_call_now(s, oc.schedule_id, moment) == who_is_on_call(model, moment), moment
        # Hand-checked points: daily turns hand over at 09:00 Shanghai; Friday's turn is the agent's.
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 0, 59)) == [w.agent_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 1)) == [w.admin_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 5)) == [w.agent_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 9)) == [w.admin_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 16, 8, 59)) == []  # before the rotation began


def test_the_cached_schedule_follows_every_change(desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    now = sh(2026, 11, 21, 3)
    with desk.transaction() as s:
        first = service.load_schedule(s, oc.schedule_id)
        assert service.load_schedule(s, oc.schedule_id) is first  # unchanged: served from the cache
        assert service.on_call_now(s, oc.schedule_id, now) == [w.agent_id]
    with desk.transaction() as s:
        made = service.add_override(
            s, desk.clock, agent_of(w), oc.schedule_id, person_id=w.admin_id, start=now, end=now + timedelta(hours=1)
        )
    with desk.transaction() as s:
        assert service.load_schedule(s, oc.schedule_id) is not first
        assert service.on_call_now(s, oc.schedule_id, now) == [w.admin_id]
        service.remove_override(s, desk.clock, agent_of(w), oc.schedule_id, made.id)
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, now) == [w.agent_id]
        layer = service.layers(s, agent_of(w), oc.schedule_id)[0]
        service.update_layer(
            s,
            desk.clock,
            admin_of(w),
            oc.schedule_id,
            layer.id,
            service.LayerSpec("daily", (w.admin_id, w.agent_id), ROTATION_START, 1, "day"),
        )
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, now) == [w.admin_id]


def test_next_shifts_start_with_the_one_in_force(desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    with desk.transaction() as s:
        coming = service.next_shifts(s, oc.schedule_id, sh(2026, 11, 21, 3), 3)
        current, following = service.now_and_next(s, oc.schedule_id, sh(2026, 11, 21, 3))
    assert [(x.person_id, x.start, x.end) for x in coming] == [
        (w.agent_id, sh(2026, 11, 20, 9), sh(2026, 11, 21, 9)),
        (w.admin_id, sh(2026, 11, 21, 9), sh(2026, 11, 22, 9)),
        (w.agent_id, sh(2026, 11, 22, 9), sh(2026, 11, 23, 9)),
    ]
    assert current == coming[0] and following[0] == coming[1] and len(following) == 5


def test_who_may_change_what(desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    customer = Principal(person_id=w.alice_id, role=Role.CUSTOMER, organization_id=w.liveco)
    spec = service.LayerSpec("x", (w.agent_id,), ROTATION_START)
    with desk.transaction() as s:
        with pytest.raises(Forbidden):
            service.add_layer(s, desk.clock, agent_of(w), oc.schedule_id, spec)  # rotations are the manager's
        with pytest.raises(Forbidden):
            service.list_schedules(s, customer)
        with pytest.raises(Forbidden):
            service.add_override(
                s,
                desk.clock,
                customer,
                oc.schedule_id,
                person_id=w.agent_id,
                start=sh(2026, 11, 21),
                end=sh(2026, 11, 22),
            )
        with pytest.raises(InvalidInput, match="not active agents or admins"):
            service.add_layer(
                s, desk.clock, admin_of(w), oc.schedule_id, service.LayerSpec("x", (w.alice_id,), ROTATION_START)
            )
        with pytest.raises(InvalidInput, match="end after it starts"):
            service.add_override(
                s,
                desk.clock,
                agent_of(w),
                oc.schedule_id,
                person_id=w.agent_id,
                start=sh(2026, 11, 22),
                end=sh(2026, 11, 21),
            )
        with pytest.raises(InvalidInput, match="turn_unit"):
            service.add_layer(
                s,
                desk.clock,
                admin_of(w),
                oc.schedule_id,
                service.LayerSpec("x", (w.agent_id,), ROTATION_START, 1, "week"),
            )
        with pytest.raises(InvalidInput, match="time of day"):
            service.add_layer(
                s,
                desk.clock,
                admin_of(w),
                oc.schedule_id,
                service.LayerSpec(
                    "x",
                    (w.agent_id,),
                    ROTATION_START,
                    restrictions=({"kind": "daily", "start": "25:00", "end": "09:00"},),
                ),
            )
        with pytest.raises(NotFound):
            service.on_call_now(s, "nope", sh(2026, 11, 21))
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 3)) == [w.agent_id]  # nothing refused stuck


def test_restrictions_round_trip_through_the_database(desk: Desk) -> None:
    w = build_world(desk)
    windows = (
        {"kind": "daily", "start": "09:00", "end": "18:00", "weekdays": [0, 1, 2, 3, 4]},
        {"kind": "weekly", "start_weekday": 5, "start": "10:00", "end_weekday": 5, "end": "12:00"},
    )
    oc = daily_rotation(desk, w, restrictions=windows)
    with desk.transaction() as s:
        assert service.layers(s, admin_of(w), oc.schedule_id)[0].restrictions == list(windows)
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 23, 8, 59)) == []  # Monday before nine
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 23, 9)) == [w.admin_id]  # turn 7: odd
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 24, 17, 59)) == [w.agent_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 24, 18)) == []
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 11)) == [w.admin_id]  # Saturday window
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 12)) == []


def _notices(desk: Desk) -> list[tuple[object, object, object]]:
    with desk.transaction() as s:
        rows = s.scalars(select(GapNoticeRow).order_by(GapNoticeRow.start))
        return [(n.person_id, n.start, n.end) for n in rows]


def test_gap_check_job_tells_the_owner_once_per_hole(desk: Desk, clock: FrozenClock, smtp: Mailbox) -> None:
    w = build_world(desk)
    # Weekdays 09:00-18:00 Shanghai only: nights and weekends are holes.
    oc = daily_rotation(
        desk, w, restrictions=({"kind": "daily", "start": "09:00", "end": "18:00", "weekdays": [0, 1, 2, 3, 4]},)
    )
    worker = Worker(desk.sessions, registry, clock)
    assert worker.run_once(limit=10) == 1  # the check queued when the schedule was made
    holes = _notices(desk)
    # Now is Saturday 03:00 Shanghai; fourteen days on is Saturday 5 December 03:00.
    assert holes[0] == (w.admin_id, clock.now(), sh(2026, 11, 23, 9))
    assert holes[1] == (w.admin_id, sh(2026, 11, 23, 18), sh(2026, 11, 24, 9))
    assert holes[5] == (w.admin_id, sh(2026, 11, 27, 18), sh(2026, 11, 30, 9))
    assert holes[-1] == (w.admin_id, sh(2026, 12, 4, 18), sh(2026, 12, 5, 3))
    assert len(holes) == 11
    assert worker.run_once(limit=10) == 1  # the owner's e-mail
    assert len(smtp.received) == 1
    mail = smtp.received[0]
    assert mail["To"] == "admin@vendor.test" and "Network primary" in mail["Subject"]
    assert mail.get_content().count("Network primary") == 11

    # The next day's check, queued by the first: the last hole only grows, nobody is told again.
    with desk.transaction() as s:
        pending = [j for j in list_jobs(s, state="pending") if j.kind == service.GAP_CHECK_JOB]
    assert [j.due_at for j in pending] == [clock.now().replace(hour=1) + timedelta(days=1)]
    clock.set(pending[0].due_at)
    assert worker.run_once(limit=10) == 1
    after = _notices(desk)
    assert len(after) == 11 and after[-1] == (w.admin_id, sh(2026, 12, 4, 18), sh(2026, 12, 5, 9))
    assert worker.run_once(limit=10) == 0 and len(smtp.received) == 1
    with desk.transaction() as s:
        assert s.scalar(select(func.count()).where(GapNoticeRow.emailed_at.is_(None))) == 0

    # A new owner hears of the holes ahead too.
    with desk.transaction() as s:
        service.update_schedule(s, clock, admin_of(w), oc.schedule_id, owner_id=w.agent_id)
    clock.advance(timedelta(days=1))
    with desk.transaction() as s:
        made = service.record_gap_notices(s, clock)
    told = [n for n in _notices(desk) if n[0] == w.agent_id]
    assert len(made) == len(told) == 11
    assert told[0] == (w.agent_id, sh(2026, 11, 22, 9), sh(2026, 11, 23, 9))
    assert told[-1] == (w.agent_id, sh(2026, 12, 4, 18), sh(2026, 12, 6, 9))


def test_gap_check_without_smtp_only_logs(desk: Desk, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from zhiban.core.settings import get_settings

    monkeypatch.setenv("ZHIBAN_SMTP_URL", "")
    get_settings.cache_clear()
    try:
        w = build_world(desk)
        with desk.transaction() as s:
            service.create_schedule(s, clock, admin_of(w), name="Empty", zone="UTC", owner_id=w.admin_id)
        worker = Worker(desk.sessions, registry, clock)
        worker.run_once(limit=10)
        worker.run_once(limit=10)
        assert _notices(desk) == [(w.admin_id, clock.now(), clock.now() + timedelta(days=14))]
        with desk.transaction() as s:
            assert s.scalar(select(func.count()).where(GapNoticeRow.emailed_at.is_not(None))) == 1
    finally:
        get_settings.cache_clear()


def test_demo_schedules(desk: Desk, clock: FrozenClock) -> None:
    with desk.transaction() as s:
        seed_demo(s, clock)
        assert service.seed_demo_schedules(s, clock) == ["Network primary", "Duty manager"]
        assert service.seed_demo_schedules(s, clock) == []  # once only
        ids = {p.email: p.id for p in s.scalars(select(PersonRow))}
        network = service.schedule_id_by_name(s, "Network primary")
        duty = service.schedule_id_by_name(s, "Duty manager")
        # The test clock is Saturday 21 November 03:00 Shanghai: the first week (from Monday 16, 09:00) is Li Na's.
        assert service.on_call_now(s, network, clock.now()) == [ids["li.na@zhiban.demo"]]
        assert service.on_call_now(s, network, sh(2026, 11, 23, 9)) == [ids["sam@zhiban.demo"]]
        assert service.on_call_now(s, network, sh(2026, 11, 23, 8, 59)) == [ids["li.na@zhiban.demo"]]
        assert service.on_call_now(s, duty, clock.now().astimezone(UTC) + timedelta(days=40)) == [
            ids["admin@zhiban.demo"]
        ]


def test_a_gap_email_job_queued_before_the_outbox_is_handed_to_it(
    desk: Desk, clock: FrozenClock, smtp: Mailbox
) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        service.create_schedule(s, clock, admin_of(w), name="Empty", zone="UTC", owner_id=w.admin_id)
        made = service.record_gap_notices(s, clock)
        enqueue(s, "oncall.gap_email", {"notice_ids": [n.id for n in made]}, due_at=clock.now())
    worker = Worker(desk.sessions, registry, clock)
    worker.run_once(limit=10)
    worker.run_once(limit=10)
    assert len(smtp.received) == 1 and smtp.received[0]["To"] == "admin@vendor.test"
    with desk.transaction() as s:
        assert s.scalar(select(func.count()).where(GapNoticeRow.emailed_at.is_not(None))) == 1


def test_the_gap_mail_is_in_the_one_outbox(desk: Desk, clock: FrozenClock, smtp: Mailbox) -> None:
    from zhiban.notify import outbox

    w = build_world(desk)
    with desk.transaction() as s:
        service.create_schedule(s, clock, admin_of(w), name="Empty", zone="UTC", owner_id=w.admin_id)
    worker = Worker(desk.sessions, registry, clock)
    worker.run_once(limit=10)
    worker.run_once(limit=10)
    with desk.transaction() as s:
        [row] = outbox.recent(s, kind="oncall")
        assert (row.kind, row.state, row.person_id) == ("oncall.gap", "sent", w.admin_id)
