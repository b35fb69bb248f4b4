"""`zhiban apps` and `zhiban simulate` on a temporary SQLite database, run in-process as the installed command
runs them."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.zhiban_cli import Ran, zhiban
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.store.db import Base, make_engine


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A SQLite file with the schema (as `zhiban migrate` leaves it) and the LiveCo organization."""
    import zhiban.store.models  # noqa: F401
    from zhiban.core.settings import Settings

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    desk = Desk(settings=Settings(database_url=url, var_dir=str(tmp_path / "var")), engine=engine, secret_key="k")
    with desk.transaction() as s:
        identity.create_organization(s, FrozenClock(datetime(2026, 11, 20, tzinfo=UTC)), name="LiveCo", slug="liveco")
    engine.dispose()
    return url


def run(url: str, *args: str, cwd: Path) -> Ran:
    env = {**os.environ, "ZHIBAN_DATABASE_URL": url, "ZHIBAN_VAR_DIR": str(cwd / "var"), "COLUMNS": "200"}
    return zhiban(*args, env=env, cwd=cwd)


def test_apps_create_prints_the_key_once_and_list_hides_it(database: str, tmp_path: Path) -> None:
    made = run(database, "apps", "create", "--org", "liveco", "--app-id", "liveco", "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    created = orjson.loads(made.stdout)
    assert created["app_id"] == "liveco" and created["organization"] == "liveco"
    assert created["ingest_key"].startswith("zbi_")
    listed = run(database, "apps", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [only] = orjson.loads(listed.stdout)
    assert only["app_id"] == "liveco" and "ingest_key" not in only
    # The key works against the database the command wrote to.
    from zhiban.apps import service as apps
    from zhiban.core.settings import Settings

    desk = Desk(settings=Settings(database_url=database, var_dir=str(tmp_path / "var")), secret_key="k")
    with desk.transaction() as s:
        assert apps.resolve_ingest_key(s, created["ingest_key"]).app_id == "liveco"
    again = run(database, "apps", "create", "--org", "liveco", "--app-id", "liveco", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr and again.stderr.count("\n") == 1


def test_simulate_writes_reports_and_the_truth_file(tmp_path: Path) -> None:
    out = tmp_path / "traffic.ndjson.gz"
    done = run(
        "sqlite:///unused.db",
        "simulate",
        "--out",
        str(out),
        "--duration",
        "2m",
        "--start",
        "2026-11-21T19:00:00Z",
        "--seed",
        "3",
        "--peak-sessions",
        "50",
        "--fault",
        "edge_packet_loss:liveco:region=cn-east,edge=sh-edge-07:+30s:1m:8",
        "--no-progress",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout.strip().splitlines()[-1])
    lines = [orjson.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines() if line.strip()]
    assert summary["reports"] == len(lines) > 0 and summary["ticks"] == 12
    # 03:00 on a Saturday in Shanghai: live rooms and global social calls, but no classes.
    assert {r["app_id"] for r in lines} == {"liveco", "hiyo"}
    stamps = sorted(r["ts"] for r in lines)
    assert (
        stamps[0] >= "2026-11-21T19:00:00Z" and stamps[-1] <= "2026-11-21T19:02:00Z"
    )  # a report is stamped at its interval's end
    truth = orjson.loads(Path(summary["truth"]).read_bytes())
    [fault] = [e for e in truth["events"] if e["kind"] == "edge_packet_loss"]
    assert fault["slice"] == {"region": "cn-east", "edge": "sh-edge-07"}
    assert fault["start"] == "2026-11-21T19:00:30Z" and fault["end"] == "2026-11-21T19:01:30Z"
    assert fault["magnitude"] == 8
    # The same seed and start give the same reports.
    twin = tmp_path / "twin.ndjson.gz"
    again = run(
        "sqlite:///unused.db",
        "telemetry",
        "simulate",
        "--out",
        str(twin),
        "--duration",
        "2m",
        "--start",
        "2026-11-21T19:00:00Z",
        "--seed",
        "3",
        "--peak-sessions",
        "50",
        "--fault",
        "edge_packet_loss:liveco:region=cn-east,edge=sh-edge-07:2026-11-21T19:00:30Z:1m:8",
        "--no-progress",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert gzip.decompress(twin.read_bytes()) == gzip.decompress(out.read_bytes())
