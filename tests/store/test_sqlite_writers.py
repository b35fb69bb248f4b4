"""SQLite writers queue for the write lock (BEGIN IMMEDIATE with our own short naps) instead of failing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from zhiban.store.db import make_engine


def test_a_writer_waits_for_the_lock_and_goes_right_after(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("create table log (who text, at real)"))
    holding = threading.Event()
    released_at: list[float] = []

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(text("insert into log values ('first', 0)"))
            holding.set()
            time.sleep(0.3)
            released_at.append(time.monotonic())

    first = threading.Thread(target=hold)
    first.start()
    assert holding.wait(5)
    with engine.begin() as conn:  # blocks in BEGIN IMMEDIATE until the first writer commits
        began = time.monotonic()
        conn.execute(text("insert into log values ('second', 0)"))
    first.join()
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("select who from log order by rowid"))] == ["first", "second"]
    # The second writer went after the first released (its commit follows `released_at` closely).
    assert began >= released_at[0]
    engine.dispose()
