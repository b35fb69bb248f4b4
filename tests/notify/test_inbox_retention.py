"""The agent's inbox is kept for a while: read notices go after ZHIBAN_INBOX_RETENTION_DAYS (90), unread ones after
ZHIBAN_INBOX_UNREAD_RETENTION_DAYS (365), by a daily job in bounded batches; a notice goes with its ticket (a
foreign key, ON DELETE CASCADE). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from tests.tenancy import build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.engine.store import Job
from zhiban.identity.service import principal_of
from zhiban.identity.store import PersonRow
from zhiban.notify import inbox, retention
from zhiban.notify.jobs import registry
from zhiban.notify.store import InboxRow
from zhiban.tickets import service as tickets
from zhiban.tickets.store import TicketRow


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _post(desk: Desk, person_id: str, key: str, *, age: timedelta, read: bool, ticket_id: int | None = None) -> int:
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    now = clock.now()
    clock.set(now - age)
    try:
        with desk.transaction() as s:
            note = inbox.post(s, clock, person_id=person_id, kind=inbox.TICKET_NEW, key=key, title=key,
                              ticket_id=ticket_id)  # fmt: skip
            assert note is not None
            if read:
                s.get(InboxRow, note.id).read_at = clock.now()  # type: ignore[union-attr]
            return note.id
    finally:
        clock.set(now)


def _keys(desk: Desk) -> set[str]:
    with desk.sessions() as s:
        return set(s.scalars(select(InboxRow.key)))


def _drain(w: Worker) -> None:
    while w.run_once(limit=50):
        pass


def test_read_notices_go_after_90_days_unread_after_365_and_the_job_comes_back_daily(
    desk: Desk, clock: FrozenClock
) -> None:
    world = build_world(desk)
    days = timedelta(days=1)
    for key, age, read in (
        ("unread-400", 400 * days, False),
        ("read-200", 200 * days, True),
        ("unread-200", 200 * days, False),
        ("read-100", 100 * days, True),
        ("unread-100", 100 * days, False),
        ("read-10", 10 * days, True),
    ):
        _post(desk, world.agent_id, key, age=age, read=read)
    with desk.transaction() as s:  # each back-dated post armed the run of the day after it: forget those
        assert s.scalar(select(func.count()).where(Job.kind == retention.RETENTION_JOB)) == 4  # 4 days
        s.execute(delete(Job).where(Job.kind == retention.RETENTION_JOB))
    _post(desk, world.agent_id, "today", age=timedelta(0), read=False)
    _post(desk, world.agent_id, "today-2", age=timedelta(0), read=False)
    with desk.sessions() as s:  # today's posts armed tomorrow's run, once
        armed = s.scalars(select(Job).where(Job.kind == retention.RETENTION_JOB)).all()
        assert [j.due_at for j in armed] == [datetime.combine(clock.now().date() + days, retention.RUN_AT, UTC)]
    w = Worker(desk.sessions, registry, clock, worker_id="retention-test")
    _drain(w)
    assert len(_keys(desk)) == 8  # nothing runs before 02:00 UTC tomorrow
    clock.set(datetime.combine(clock.now().date() + days, retention.RUN_AT, tzinfo=UTC))
    _drain(w)
    assert _keys(desk) == {"unread-200", "unread-100", "read-10", "today", "today-2"}
    # The run armed the next day's, since notices remain.
    with desk.sessions() as s:
        tomorrow = f"{retention.RETENTION_JOB}:{(clock.now().date() + days).isoformat()}"
        assert s.scalar(select(func.count()).where(Job.dedup_key == tomorrow)) == 1


def test_the_days_are_read_at_each_run_and_a_backlog_goes_in_bounded_batches(
    desk: Desk, clock: FrozenClock, settings_env: pytest.MonkeyPatch
) -> None:
    world = build_world(desk)
    for n in range(7):
        _post(desk, world.agent_id, f"read-{n}", age=timedelta(days=20), read=True)
    _post(desk, world.agent_id, "unread", age=timedelta(days=20), read=False)
    settings_env.setenv("ZHIBAN_INBOX_RETENTION_DAYS", "14")
    settings_env.setenv("ZHIBAN_INBOX_UNREAD_RETENTION_DAYS", "7")  # less than read: kept as long as read ones
    get_settings.cache_clear()
    settings_env.setattr(retention, "BATCH", 2)
    settings_env.setattr(retention, "MAX_BATCHES", 2)
    deleted: list[int] = []
    real = retention.prune_batch

    def counted(*args: object, **kwargs: object) -> int:
        n = real(*args, **kwargs)  # type: ignore[arg-type]
        deleted.append(n)
        return n

    settings_env.setattr(retention, "prune_batch", counted)
    w = Worker(desk.sessions, registry, clock, worker_id="retention-test")
    clock.advance(timedelta(days=1))
    _drain(w)
    # 2 + 2 in the first run, which queued a second run at once: 2 + 2, a third: 0. Never more than 2 at a time.
    assert deleted == [2, 2, 2, 2, 0] and max(deleted) <= 2
    assert _keys(desk) == set()  # the unread notice, 20 days old, was past 14 days too


def test_a_notice_goes_with_its_ticket(desk: Desk, clock: FrozenClock) -> None:
    world = build_world(desk)
    with desk.transaction() as s:
        alice = principal_of(s.get(PersonRow, world.alice_id))  # type: ignore[arg-type]
        ticket_id = tickets.create_ticket(s, clock, alice, subject="直播卡顿", body="since 02:50").id
        other_id = tickets.create_ticket(s, clock, alice, subject="echo", body="in class").id
    _post(desk, world.agent_id, "about-ticket", age=timedelta(0), read=False, ticket_id=ticket_id)
    _post(desk, world.agent_id, "about-other", age=timedelta(0), read=False, ticket_id=other_id)
    _post(desk, world.agent_id, "about-nothing", age=timedelta(0), read=False)
    with desk.transaction() as s:
        s.execute(delete(TicketRow).where(TicketRow.id == ticket_id))
    assert _keys(desk) == {"about-other", "about-nothing"}
    with pytest.raises(IntegrityError), desk.transaction() as s:  # a notice cannot name a ticket that is not there
        inbox.post(s, clock, person_id=world.agent_id, kind=inbox.PAGE, key="ghost", ticket_id=999_999)
