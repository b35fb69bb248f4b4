"""Shared fixtures: every store and service test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.store.db import Base, make_engine

pytest_plugins = ["tests.browser_fixtures"]

POSTGRES_URL = os.environ.get("ZHIBAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("ZHIBAN_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _postgres_available() -> bool:
    try:
        eng = create_engine(POSTGRES_URL)
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


_PG_OK: bool | None = None


def require_postgres() -> None:
    """Skip locally when PostgreSQL is down; in CI a missing server is a failure."""
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = _postgres_available()
    if not _PG_OK:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL is not reachable")


def _fresh_postgres_url() -> Iterator[str]:
    require_postgres()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # The search_path rides in the URL so that worker subprocesses land in the same schema.
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'zhiban.db'}"
    else:
        yield from _fresh_postgres_url()


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema only (for tests that are about PostgreSQL itself)."""
    yield from _fresh_postgres_url()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database with every table created."""
    eng = make_engine(db_url)
    import zhiban.store.models  # noqa: F401  (registers every table on Base.metadata)

    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def fresh_notify_channels() -> Iterator[None]:
    """Channel dependencies a test set (its FrozenClock, no SMTP) must not reach the next test's mail."""
    yield
    from zhiban.notify import service as notify

    notify.set_channel_deps(None)


@pytest.fixture
def clock() -> FrozenClock:
    """A test clock starting on a Saturday at 03:00 Asia/Shanghai (19:00 UTC Friday)."""
    return FrozenClock(datetime(2026, 11, 20, 19, 0, tzinfo=UTC))


@pytest.fixture
def desk(engine: Engine, clock: FrozenClock, tmp_path: Path) -> Desk:
    """A desk on the test database, with the test clock and a fixed secret key."""
    from zhiban.core.settings import Settings

    settings = Settings(database_url=str(engine.url), var_dir=str(tmp_path / "var"), demo=False, simulate=False)
    return Desk(settings=settings, clock=clock, engine=engine, secret_key="test-secret-key")


@pytest.fixture
def app(desk: Desk) -> FastAPI:
    from zhiban.web.app import create_app

    return create_app(desk)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def allow_loopback_egress(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let webhooks reach the tests' own receivers on 127.0.0.1, as an admin allows a real internal receiver."""
    from zhiban.core.settings import get_settings

    monkeypatch.setenv("ZHIBAN_EGRESS_ALLOW", "127.0.0.1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
