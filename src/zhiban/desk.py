"""The desk: one process's wiring of settings, clock and database, shared by web, worker and CLI."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock, clock_from
from zhiban.core.console import domain_errors_exit
from zhiban.core.settings import Settings, get_settings
from zhiban.store.db import make_engine, read_transaction, session_factory


def secret_key_for(settings: Settings) -> str:
    """The configured key, else one generated once and kept in var/ so sessions survive restarts."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.var_dir) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def clock_of(settings: Settings) -> Clock:
    """The real clock, or the test clock ZHIBAN_CLOCK_START names (refused unless ZHIBAN_ALLOW_TEST_CLOCK)."""
    return clock_from(settings.clock_start, settings.clock_anchor, allowed=settings.allow_test_clock)


@dataclass
class Desk:
    """What every edge needs: settings, the clock, the database."""

    settings: Settings
    clock: Clock = None  # type: ignore[assignment]  # None: the clock the settings name (clock_of)
    engine: Engine | None = None
    secret_key: str = ""

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = clock_of(self.settings)
        if self.engine is None:
            self.engine = make_engine(self.settings.database_url)
        if not self.secret_key:
            self.secret_key = secret_key_for(self.settings)
        self.sessions: sessionmaker[Session] = session_factory(self.db)
        # Every edge (web, worker, CLI) records ticket events; the features that react must be subscribed.
        # A feature's hooks may also take what it needs from the desk (e.g. the key that signs links).
        from zhiban.features import feature_modules

        for module in feature_modules("hooks"):
            configure = getattr(module, "configure", None)
            if configure is not None:
                configure(self)

    @property
    def db(self) -> Engine:
        assert self.engine is not None
        return self.engine

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_transaction(self) -> Iterator[Session]:
        """A session that only reads (store.db.read_transaction: on SQLite it never waits for a writer)."""
        with read_transaction(self.sessions) as session:
            yield session


def from_environment() -> Desk:
    """The desk the environment describes (`ZHIBAN_*`): what every command line starts from."""
    return Desk(settings=get_settings())


@contextmanager
def operator_transaction() -> Iterator[tuple[Desk, Session]]:
    """A command line's transaction on the environment's desk: committed on success; a domain error is one
    `error:` line and exit code 2 (the CLIs of incidents, mail, chat and tickets share it)."""
    desk = from_environment()
    with domain_errors_exit(), desk.transaction() as session:
        yield desk, session
