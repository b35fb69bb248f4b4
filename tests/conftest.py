"""Shared fixtures: every store and service test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.store.db import Base, make_engine

pytest_plugins = ["tests.browser_fixtures"]

# Property tests: no per-example deadline anywhere (the 200 ms default failed tests with DeadlineExceeded or Flaky
# when other processes held the cores; that says nothing about the code), and in CI the same examples every run
# (derandomize), so a red run is one that any rerun reproduces. Locally the examples stay random.
hypothesis_settings.register_profile("zhiban", deadline=None, derandomize=os.environ.get("CI") == "true")
hypothesis_settings.load_profile("zhiban")

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


class PostgresTables:
    """One schema per xdist worker with every table, emptied for each test that takes `engine`.

    A fresh schema costs a CREATE of 65 tables and a DROP ... CASCADE: 2-3 s a test on a loaded machine.
    Deleting the rows and restarting the sequences leaves the same empty tables in ~0.1 s. A test that
    broke the schema (a renamed table, an open lock) makes the emptying fail: the schema is then rebuilt.
    """

    def __init__(self) -> None:
        self.admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        self.schema = ""
        self.served = 0
        self.url = ""
        self._empty_sql = ""

    def _build(self) -> None:
        import zhiban.store.models  # noqa: F401  (registers every table on Base.metadata)

        self.drop()
        self.schema = "tt_" + uuid.uuid4().hex[:12]
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        self.url = f"{POSTGRES_URL}?options=-csearch_path%3D{self.schema}"
        eng = make_engine(self.url)
        Base.metadata.create_all(eng)
        eng.dispose()
        with self.admin.connect() as conn:
            sequences = conn.execute(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = :s"), {"s": self.schema}
            ).scalars()
            restarts = [f'setval(\'"{self.schema}"."{name}"\', 1, false)' for name in sequences]
        deletes = [f'DELETE FROM "{self.schema}"."{t.name}"' for t in reversed(Base.metadata.sorted_tables)]
        self._empty_sql = "; ".join(
            ["BEGIN", *deletes, *([f"SELECT {', '.join(restarts)}"] if restarts else []), "COMMIT"]
        )

    def emptied(self) -> str:
        """The schema's URL, every table there and none holding a row, every sequence restarted.

        Each test's URL differs (its connections' application_name): the desk's caches are keyed by database URL
        (policy versions, calendars, counts), and a test must not find the previous test's entries under it."""
        self.served += 1
        if not self.url:
            self._build()
        else:
            try:
                with self.admin.connect() as conn:
                    conn.exec_driver_sql(self._empty_sql)
            except Exception:
                self._build()
        return f"{self.url}&application_name=zhiban_test_{self.served}"

    def drop(self) -> None:
        if self.schema:
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            self.schema = self.url = ""


@pytest.fixture(scope="session")
def postgres_tables() -> Iterator[PostgresTables]:
    require_postgres()
    tables = PostgresTables()
    yield tables
    tables.drop()
    tables.admin.dispose()


@pytest.fixture(scope="session")
def sqlite_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every table created once; each test that takes `engine` gets a copy (create_all: ~0.3 s)."""
    import zhiban.store.models  # noqa: F401  (registers every table on Base.metadata)

    path = tmp_path_factory.mktemp("tables") / "zhiban.db"
    eng = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(eng)
    eng.dispose()  # the last connection closes: the WAL is checkpointed into the file and removed
    assert not path.with_name("zhiban.db-wal").exists()
    return path


# URLs that db_url handed out with every table created: `engine` need not create them (65 look-ups on PostgreSQL).
_WITH_TABLES: set[str] = set()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema.

    A test that takes `engine` gets the tables already created (and no rows), from a copy or an emptied schema.
    """
    with_tables = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "zhiban.db"
        if with_tables:
            shutil.copyfile(request.getfixturevalue("sqlite_tables"), path)
            _WITH_TABLES.add(f"sqlite:///{path}")
        yield f"sqlite:///{path}"
    elif with_tables:
        url = request.getfixturevalue("postgres_tables").emptied()
        _WITH_TABLES.add(url)
        yield url
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

    if db_url not in _WITH_TABLES:
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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make `--dist loadgroup` group again: one worker runs every `xdist_group("browser")` test.

    pytest-xdist 3.8 tags a grouped test by setting `item._nodeid` to "<id>@<group>", which pytest 9 no longer
    reads (the id lives in `item._id`): the tag was lost and the browser tests were spread over both workers,
    each starting its own Chromium and its own demo desk (whose simulator then ran for the whole session).
    """
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")
        }
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)
