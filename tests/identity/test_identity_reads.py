"""Identity's read interface that other features count on: the SLA breach's managers, an organization's people,
and the account lock that keeps per-account counts exact (status subscription caps)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.tenancy import build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.store.db import Base, make_engine


def test_admins_are_the_active_ones_longest_standing_first(desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)  # its admin is the first
    with desk.transaction() as s:
        clock.advance(timedelta(hours=1))
        # Two admins of the same moment: the id decides, so every replay picks the same managers.
        pair = sorted(
            identity.create_person(s, clock, email=f"{n}@vendor.test", name=n, role=Role.ADMIN).id
            for n in ("Zed", "Ann")
        )
        clock.advance(timedelta(hours=1))
        gone = identity.create_person(s, clock, email="gone@vendor.test", name="Aaron", role=Role.ADMIN)
        gone.active = False
        clock.advance(timedelta(hours=1))
        last = identity.create_person(s, clock, email="last@vendor.test", name="Abe", role=Role.ADMIN).id
    with desk.transaction() as s:
        assert [p.id for p in identity.admins(s, limit=10)] == [w.admin_id, *pair, last]  # not by name; no agent
        assert [p.id for p in identity.admins(s)] == [w.admin_id, *pair]  # three by default
        assert all(p.role is Role.ADMIN and p.active for p in identity.admins(s, limit=10))
        assert [p.id for p in identity.admins(s, limit=1)] == [w.admin_id]


def test_member_ids_are_an_organizations_people_active_or_not(desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        carol = identity.create_person(
            s, clock, email="carol@liveco.test", name="Carol", role=Role.CUSTOMER, organization_id=w.liveco
        )
        carol.active = False  # her subscriptions still count against LiveCo's cap
        empty = identity.create_organization(s, clock, name="Empty", slug="empty", plan="standard")
    with desk.transaction() as s:
        assert sorted(identity.member_ids(s, w.liveco)) == sorted([w.alice_id, carol.id])
        assert identity.member_ids(s, w.classmate) == [w.bob_id]  # no other tenant's people, no staff
        assert identity.member_ids(s, empty.id) == [] and identity.member_ids(s, "no-such-org") == []


@pytest.fixture
def pg_desk(pg_url: str, clock: FrozenClock, tmp_path: Path) -> Iterator[Desk]:
    """Row locks are PostgreSQL's (SQLite writes one transaction at a time anyway)."""
    engine = make_engine(pg_url)
    Base.metadata.create_all(engine)
    settings = Settings(database_url=pg_url, var_dir=str(tmp_path / "var"), demo=False, simulate=False)
    yield Desk(settings=settings, clock=clock, engine=engine, secret_key="test-secret-key")
    engine.dispose()


def _waits(desk: Desk, person_id: str, organization_id: str | None) -> bool:
    """Whether another transaction's lock_account makes this one wait (given up after 300 ms)."""
    try:
        with desk.transaction() as s:
            s.execute(text("SET LOCAL lock_timeout = '300ms'"))
            identity.lock_account(s, person_id=person_id, organization_id=organization_id)
    except OperationalError as exc:
        assert "lock timeout" in str(exc)
        return True
    return False


def test_lock_account_holds_the_organization_or_else_the_person_until_commit(pg_desk: Desk) -> None:
    w = build_world(pg_desk)
    with pg_desk.transaction() as s:
        carol = identity.create_person(
            s, pg_desk.clock, email="carol@liveco.test", name="Carol", role=Role.CUSTOMER, organization_id=w.liveco
        ).id
    with pg_desk.transaction() as holder:
        identity.lock_account(holder, person_id=w.alice_id, organization_id=w.liveco)
        assert _waits(pg_desk, carol, w.liveco)  # anyone of the same organization waits
        assert not _waits(pg_desk, w.bob_id, w.classmate)  # another tenant does not
        assert not _waits(pg_desk, w.agent_id, None)  # nor staff, who lock themselves
    assert not _waits(pg_desk, carol, w.liveco)  # released at commit
    with pg_desk.transaction() as holder:
        identity.lock_account(holder, person_id=w.agent_id, organization_id=None)
        assert _waits(pg_desk, w.agent_id, None)
        assert not _waits(pg_desk, w.admin_id, None)
