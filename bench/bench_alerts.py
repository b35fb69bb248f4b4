"""Alert intake under load: Events v2 at a fixed rate against a real uvicorn server, then paging latency.

    .venv/bin/python bench/bench_alerts.py [--db sqlite|postgres|both] [--rate 1000] [--seconds 20]
                                           [--new-share 0.05] [--web-procs 1] [--worker-proc] [--alerta]
                                           [--group-by-service]

An open-loop generator (bounded: rate × seconds requests, 127.0.0.1 only) sends triggers, `new-share`
of them with a new dedup key and the rest repeats. Latency counts from each request's scheduled send
time, so a server that falls behind shows it. Afterwards the database is counted (every accepted event
is in an alert's event_count; one incident per new key) and trigger → first page handed to its channel
is read from the timestamps. Targets: p99 < 50 ms intake, p99 < 1 s to the first page.
By default one process runs web + worker, like `zhiban serve`; --web-procs N runs N web processes on
one listening socket and --worker-proc moves the job worker to a process of its own (`zhiban web` +
`zhiban worker`). The load generator shares the machine's cores: the load average is printed.
With --alerta, alerta-server from PyPI in a throwaway venv under /tmp gets the same load on /alert.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRICS_TOKEN = "bench-metrics-token"  # /metrics is off unless ZHIBAN_METRICS_TOKEN is set
POSTGRES_URL = os.environ.get("ZHIBAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
INTAKE_P99_TARGET_MS = 50.0
PAGE_P99_TARGET_S = 1.0
CONNECTIONS = 48


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the server under test (a child process) ------------------------------------------------------


def serve(db_url: str, fd: int, key_file: str, role: str) -> None:
    """Child mode: role `setup` also creates the schema and a service with a policy; `web`/`all` serve HTTP
    on the inherited socket `fd` (`all` with the job worker in-process, like `zhiban serve`); `worker` runs jobs."""
    sys.path.insert(0, str(ROOT / "src"))
    import uvicorn

    import zhiban.store.models  # noqa: F401
    from zhiban.core.heap import settle_heap
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.engine import Worker, install_signal_handlers
    from zhiban.handlers import desk_registry
    from zhiban.identity import service as identity
    from zhiban.identity.model import Role
    from zhiban.incidents import integrations, service
    from zhiban.incidents.model import GroupingRule
    from zhiban.store.db import Base
    from zhiban.web.app import create_app

    settings = Settings(database_url=db_url, var_dir=tempfile.mkdtemp(), demo=False, simulate=False)
    desk = Desk(settings=settings, secret_key="bench")
    service.configure_links(secret_key="bench", base_url="http://127.0.0.1")
    if role.startswith("setup"):
        Base.metadata.create_all(desk.db)
        with desk.transaction() as s:
            agent = identity.create_person(s, desk.clock, email="oncall@vendor.test", name="On-call", role=Role.AGENT)
            policy = service.create_policy(
                s,
                desk.clock,
                name="bench",
                levels=[{"delay_minutes": 5, "targets": [{"kind": "person", "ref": agent.id}]}],
            )
            # --group-by-service: the service folds the storm into one incident (incidents.model.GroupingRule).
            grouping = GroupingRule("service", window_minutes=10) if os.environ.get("BENCH_GROUP_BY_SERVICE") else None
            svc = service.create_service(
                s, desk.clock, name="media network cn-east", policy=policy.id, grouping=grouping
            )
            key = integrations.create_integration(s, desk.clock, type_="events-v2", service_ref=svc.id).key
        Path(key_file).write_text(key)
        role = role.removeprefix("setup-")
    stop = threading.Event()
    # Pages go by e-mail to the bench's own SMTP server (ZHIBAN_SMTP_URL), as a desk's would to its relay.
    worker = Worker(desk.sessions, desk_registry(), desk.clock, concurrency=4, poll=timedelta(seconds=0.05))
    if role == "worker":
        install_signal_handlers(stop, worker)
        settle_heap()
        worker.run_forever(stop)
        return
    if role == "all":
        threading.Thread(target=worker.run_forever, args=(stop,), daemon=True).start()
    web_app = create_app(desk)
    settle_heap()  # as `zhiban serve` / `zhiban web` do
    # The inherited listening socket as what it is (TCP): uvicorn's own fd= takes it for a Unix socket, so
    # its connections lose TCP_NODELAY and each answer waits ~40 ms on Nagle and delayed ACKs.
    listener = socket.socket(fileno=fd)
    uvicorn.Server(uvicorn.Config(web_app, log_level="warning", access_log=False)).run(sockets=[listener])
    stop.set()


# --- the load generator ---------------------------------------------------------------------------


async def post_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> int:
    """POST one JSON body on a kept-alive HTTP/1.1 connection; the answer's status (its body is read and dropped)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _connection(
    port: int, path: str, bodies: list[tuple[float, bytes]], start: float, latencies: list[float], codes: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for offset, body in bodies:
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            code = await post_json(reader, writer, path, body)
            codes[code] = codes.get(code, 0) + 1
            latencies.append((time.perf_counter() - (start + offset)) * 1000)
    finally:
        writer.close()


def run_load(
    port: int, path: str, make_body: Any, rate: int, seconds: float
) -> tuple[list[float], dict[int, int], float]:
    """Send rate × seconds requests, evenly spaced, over CONNECTIONS keep-alive connections."""
    total = int(rate * seconds)
    schedule = [(i / rate, make_body(i)) for i in range(total)]
    per_conn: list[list[tuple[float, bytes]]] = [schedule[c::CONNECTIONS] for c in range(CONNECTIONS)]
    latencies: list[float] = []
    codes: dict[int, int] = {}

    async def main() -> float:
        start = time.perf_counter() + 0.2
        await asyncio.gather(*(_connection(port, path, b, start, latencies, codes) for b in per_conn))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    return latencies, codes, elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pids: list[int], limit: float = 90.0) -> float:
    """Seconds until these processes are idle (under 5 % of a core for 2 s running), at most `limit`: the CPU per
    request then counts the worker's whole share of the load (its pages sent), not what it did by a fixed time."""
    started = time.monotonic()
    quiet = 0
    last = sum(cpu_seconds(pid) for pid in pids)
    while time.monotonic() - started < limit and quiet < 2:
        time.sleep(1)
        now = sum(cpu_seconds(pid) for pid in pids)
        quiet = quiet + 1 if now - last < 0.05 else 0
        last = now
    return time.monotonic() - started


def intake_figures(port: int) -> str:
    """Mean batch size and commit time of the intake, from the web process's /metrics (one process's view)."""
    import httpx

    values: dict[str, float] = {}
    buckets: dict[str, float] = {}
    auth = {"authorization": f"Bearer {METRICS_TOKEN}"}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", headers=auth, timeout=10).text.splitlines():
        if line.startswith("zhiban_http_request_seconds_bucket") and 'route="/v2/enqueue"' in line:
            le = line.split('le="')[1].split('"')[0]
            buckets[le] = buckets.get(le, 0) + float(line.rpartition(" ")[2])
        series, _, value = line.rpartition(" ")
        name = series.split("{")[0]
        wanted = name.startswith("zhiban_alert_intake_") or 'route="/v2/enqueue"' in series
        if wanted and name.endswith(("_sum", "_count")):
            values[name] = values.get(name, 0) + float(value)
    batches = values.get("zhiban_alert_intake_batch_events_count", 0)
    if not batches:
        return "no intake figures"
    events = values["zhiban_alert_intake_batch_events_sum"] / batches
    commit_ms = values["zhiban_alert_intake_commit_seconds_sum"] * 1000 / batches
    requests = values.get("zhiban_http_request_seconds_count", 0)
    served_ms = values.get("zhiban_http_request_seconds_sum", 0) * 1000 / max(1, requests)
    return (
        f"{batches:.0f} intake transactions of {events:.1f} events, {commit_ms:.1f} ms each on average; "
        f"{served_ms:.1f} ms per request on average inside the server, "
        f"{1 - buckets.get('0.05', 0) / max(1, requests):.1%} over 50 ms"
    )


def postgres_background(db_url: str) -> tuple[int, int]:
    """(checkpoints, autovacuum runs on the bench's tables) so far: PostgreSQL's own work that can stall a run."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        checkpoints = conn.execute(text("select checkpoints_timed + checkpoints_req from pg_stat_bgwriter")).scalar()
        vacuums = conn.execute(
            text(
                "select coalesce(sum(autovacuum_count + autoanalyze_count), 0) from pg_stat_user_tables "
                "where schemaname = current_schema()"
            )
        ).scalar()
    engine.dispose()
    return int(checkpoints or 0), int(vacuums or 0)


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL server process (its backends do the SQL work of the desk)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_http(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not start")


def wait_ready(port: int, timeout: float = 120) -> None:
    """Until GET /healthz answers 200 (the socket itself listens before any server accepts)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not become ready")


# --- zhiban ---------------------------------------------------------------------------------------


def settle_postgres(conn: Any, timeout: float = 60.0) -> None:
    """Start from a quiet server: wait while autovacuum or other sessions work (a previous run's dropped
    schema is still being cleaned up), then write dirty pages out, so one run does not pay for the last."""
    from sqlalchemy import text

    busy = text(
        "select count(*) from pg_stat_activity where pid <> pg_backend_pid() "
        "and (backend_type = 'autovacuum worker' or (backend_type = 'client backend' and state = 'active'))"
    )
    started = time.monotonic()
    quiet_since = None
    while time.monotonic() - started < timeout:
        if conn.execute(busy).scalar():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 3:
            break
        time.sleep(0.5)
    conn.execute(text("CHECKPOINT"))
    print(f"PostgreSQL settled in {time.monotonic() - started:.1f} s (quiet 3 s, then CHECKPOINT)", flush=True)


def fresh_db(kind: str, workdir: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", None
    from sqlalchemy import create_engine, text

    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        settle_postgres(conn)
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", drop


def _start(args: list[str], env: dict[str, str], log: Path, fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
        pass_fds=fds,
    )


class MailSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that counts the pages it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.received = 0
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.received += 1
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.controller.port}"

    def stop(self) -> None:
        self.controller.stop()


def bench_zhiban(
    kind: str, rate: int, seconds: float, new_share: float, web_procs: int = 1, worker_proc: bool = False
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    workdir = Path(tempfile.mkdtemp(prefix="zhiban-bench-"))
    db_url, drop = fresh_db(kind, workdir)
    # One listening socket, inherited by every web process (the kernel spreads the connections).
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    port = int(listener.getsockname()[1])
    fd = listener.fileno()
    key_file = workdir / "key"
    mail = MailSink()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        ZHIBAN_LOG_LEVEL="WARNING",
        ZHIBAN_SMTP_URL=mail.url,
        ZHIBAN_METRICS_TOKEN=METRICS_TOKEN,
    )
    log = workdir / "server.log"
    web_role = "web" if worker_proc else "all"
    servers = [_start([db_url, str(fd), str(key_file), f"setup-{web_role}"], env, log, (fd,))]
    try:
        deadline = time.monotonic() + 120
        while not key_file.exists():
            if time.monotonic() > deadline or servers[0].poll() is not None:
                raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        for _ in range(web_procs - 1):
            servers.append(_start([db_url, str(fd), str(key_file), "web"], env, log, (fd,)))
        if worker_proc:
            servers.append(_start([db_url, str(fd), str(key_file), "worker"], env, log, ()))
        wait_ready(port)
        time.sleep(5 if len(servers) > 1 else 0.5)  # let the other processes import and start
        key = key_file.read_text()
        rng = random.Random(7)
        new_keys: list[str] = []

        def body(i: int) -> bytes:
            if not new_keys or rng.random() < new_share:
                new_keys.append(f"alert-{i}")
                dedup = new_keys[-1]
            else:
                dedup = new_keys[rng.randrange(len(new_keys))]
            return json.dumps(
                {
                    "routing_key": key,
                    "event_action": "trigger",
                    "dedup_key": dedup,
                    "payload": {"summary": f"{dedup} packet loss", "source": "sh-edge-07", "severity": "critical"},
                }
            ).encode()

        # One alert first, not measured: the first incident of a process loads its holiday calendars (~0.5 s).
        warm = {"routing_key": key, "event_action": "trigger", "dedup_key": "warm-up",
                "payload": {"summary": "warm-up", "source": "bench", "severity": "critical"}}  # fmt: skip
        import httpx

        httpx.post(f"http://127.0.0.1:{port}/v2/enqueue", json=warm, timeout=30).raise_for_status()
        time.sleep(1)
        load_before = os.getloadavg()[0]
        cpu_before = [cpu_seconds(server.pid) for server in servers]
        postgres_before = postgres_cpu_seconds()
        background_before = postgres_background(db_url) if kind == "postgres" else (0, 0)
        client_before = time.process_time()
        latencies, codes, elapsed = run_load(port, "/v2/enqueue", body, rate, seconds)
        client_cpu = time.process_time() - client_before
        background_after = postgres_background(db_url) if kind == "postgres" else (0, 0)
        load_after = os.getloadavg()[0]
        drained = wait_idle([server.pid for server in servers])  # the worker hands out the last pages
        intake = intake_figures(port)
        # CPU per request of each process over the load and the drain after it (ms), and the load generator's.
        cpu_ms = [
            (cpu_seconds(server.pid) - before) * 1000 / max(1, len(latencies))
            for server, before in zip(servers, cpu_before, strict=True)
        ]
        postgres_ms = (postgres_cpu_seconds() - postgres_before) * 1000 / max(1, len(latencies))
        counts = count_zhiban(db_url)
    finally:
        listener.close()
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        mail.stop()
        if drop:
            drop()
    accepted = codes.get(202, 0)
    return {
        "db": kind,
        "layout": f"{web_procs} web process(es), worker {'in its own process' if worker_proc else 'in-process'}",
        "load": (load_before, load_after),
        "sent": len(latencies),
        "accepted": accepted,
        "codes": codes,
        "achieved_rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "new_keys": len(set(new_keys)),
        **counts,
        "lost_events": accepted + 1 - counts["events_in_db"],  # + the warm-up alert
        "mailed": mail.received,
        "intake": intake,
        "drained_s": drained,
        "cpu_ms": cpu_ms,
        "client_cpu_ms": client_cpu * 1000 / max(1, len(latencies)),
        "postgres_cpu_ms": postgres_ms if kind == "postgres" else None,
        "postgres_background": [
            after - before for before, after in zip(background_before, background_after, strict=True)
        ],
    }


def count_zhiban(db_url: str) -> dict[str, Any]:
    from sqlalchemy import func, or_, select

    import zhiban.store.models  # noqa: F401
    from zhiban.incidents.store import AlertRow, IncidentRow
    from zhiban.notify.store import NotificationRow
    from zhiban.store.db import make_engine, session_factory, transaction

    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as s:
        events = int(s.scalar(select(func.coalesce(func.sum(AlertRow.event_count), 0))) or 0)
        # The warm-up's own incident is left out, unless the load's alerts joined it (--group-by-service).
        measured = or_(IncidentRow.title != "warm-up", IncidentRow.alert_count > 1)
        incidents = int(s.scalar(select(func.count()).select_from(IncidentRow).where(measured)) or 0)
        first_page = (
            select(NotificationRow.subject_id, func.min(NotificationRow.handed_at).label("handed"))
            .group_by(NotificationRow.subject_id)
            .subquery()
        )
        rows = s.execute(
            select(IncidentRow.triggered_at, first_page.c.handed)
            .join(first_page, first_page.c.subject_id == IncidentRow.id)
            .where(measured)
        ).all()
    engine.dispose()
    from datetime import UTC

    delays = [
        ((handed if handed.tzinfo else handed.replace(tzinfo=UTC)) - trig).total_seconds()
        for trig, handed in rows
        if handed is not None
    ]
    return {
        "events_in_db": events,
        "incidents": incidents,
        "paged_incidents": len(delays),
        "page_p50_s": percentile(delays, 0.5),
        "page_p99_s": percentile(delays, 0.99),
    }


# --- alerta-server, for comparison ----------------------------------------------------------------


def bench_alerta(rate: int, seconds: float, new_share: float) -> dict[str, Any] | str:
    """alerta-server from PyPI in /tmp/alerta-venv on PostgreSQL; returns figures, or why it could not run."""
    venv = Path("/tmp/alerta-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode:
            return f"could not make a venv: {made.stderr[-300:]}"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "alerta-server", "psycopg2-binary", "gunicorn"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode:
        return f"pip install alerta-server failed: {pip.stderr[-500:]}"
    from sqlalchemy import create_engine, text

    dbname = "alerta_" + uuid.uuid4().hex[:8]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{dbname}"'))
    port = free_port()
    base = POSTGRES_URL.replace("postgresql+psycopg://", "postgres://").rsplit("/", 1)[0]
    workdir = Path(tempfile.mkdtemp(prefix="alerta-bench-"))
    config = workdir / "alertad.conf"
    config.write_text(f"DATABASE_URL = '{base}/{dbname}'\nAUTH_REQUIRED = False\nPLUGINS = []\n")
    env = dict(os.environ, ALERTA_SVR_CONF_FILE=str(config))
    server = subprocess.Popen(
        [str(venv / "bin" / "gunicorn"), "-w", "1", "--threads", "8", "-b", f"127.0.0.1:{port}", "alerta:create_app()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "alerta.log", "wb"),  # noqa: SIM115
        cwd=workdir,
    )
    try:
        wait_http(port)
        time.sleep(2)
        rng = random.Random(7)
        names: list[str] = []

        def body(i: int) -> bytes:
            if not names or rng.random() < new_share:
                names.append(f"alert-{i}")
                resource = names[-1]
            else:
                resource = names[rng.randrange(len(names))]
            return json.dumps(
                {"resource": resource, "event": "PacketLoss", "environment": "Production", "severity": "critical",
                 "service": ["media network cn-east"], "text": f"{resource} packet loss", "origin": "bench"}
            ).encode()  # fmt: skip

        latencies, codes, elapsed = run_load(port, "/alert", body, rate, seconds)
        ok = codes.get(201, 0) + codes.get(202, 0)
        if not ok:
            return f"alerta answered no alert with 201: {codes}; log: {(workdir / 'alerta.log').read_text()[-500:]}"
        engine = create_engine(f"{POSTGRES_URL.rsplit('/', 1)[0]}/{dbname}")
        with engine.connect() as conn:
            stored = conn.execute(text("select count(*), coalesce(sum(duplicate_count + 1), 0) from alerts")).one()
        engine.dispose()
        return {
            "sent": len(latencies),
            "accepted": ok,
            "codes": codes,
            "achieved_rate": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "alerts": int(stored[0]),
            "events_in_db": int(stored[1]),
        }
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        time.sleep(1)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--new-share", type=float, default=0.05)
    parser.add_argument("--web-procs", type=int, default=1, help="web processes sharing the listening socket")
    parser.add_argument("--worker-proc", action="store_true", help="run the job worker in a process of its own")
    parser.add_argument("--alerta", action="store_true", help="also run alerta-server on PostgreSQL")
    parser.add_argument(
        "--group-by-service", action="store_true", help="the service groups new alerts (10-minute window)"
    )
    args = parser.parse_args()
    if args.group_by_service:
        os.environ["BENCH_GROUP_BY_SERVICE"] = "1"  # read by the server processes, which inherit it
    if not (1 <= args.rate <= 5000 and 1 <= args.seconds <= 120 and 0 <= args.new_share <= 1):
        raise SystemExit("rate 1..5000, seconds 1..120, new-share 0..1")
    if not 1 <= args.web_procs <= 8:
        raise SystemExit("web-procs 1..8")
    results = {}
    for kind in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        result = bench_zhiban(kind, args.rate, args.seconds, args.new_share, args.web_procs, args.worker_proc)
        results[kind] = result
        print(
            f"zhiban/{kind} ({result['layout']}; load average {result['load'][0]:.1f} → {result['load'][1]:.1f} "
            f"on {os.cpu_count()} cores): {result['sent']} sent at {result['achieved_rate']:.0f}/s, "
            f"codes {result['codes']}; "
            f"intake p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms (target {INTAKE_P99_TARGET_MS:.0f}, "
            f"ratio {result['p99_ms'] / INTAKE_P99_TARGET_MS:.2f}); events in DB {result['events_in_db']} "
            f"(lost {result['lost_events']}); incidents {result['incidents']} for {result['new_keys']} new keys; "
            f"trigger→first page p50 {result['page_p50_s']:.3f} s p99 {result['page_p99_s']:.3f} s "
            f"(target {PAGE_P99_TARGET_S:.0f}, ratio {result['page_p99_s'] / PAGE_P99_TARGET_S:.2f}) "
            f"over {result['paged_incidents']} paged incidents ({result['mailed']} pages received by the SMTP "
            "server, the warm-up's included); CPU per request: "
            + ", ".join(f"{ms:.2f} ms" for ms in result["cpu_ms"])
            + f" in the server processes (first: web{'' if args.worker_proc else ' + worker'}"
            + (", last: worker" if args.worker_proc else "")
            + f"), {result['client_cpu_ms']:.2f} ms in the load generator"
            + (f", {result['postgres_cpu_ms']:.2f} ms in PostgreSQL" if result["postgres_cpu_ms"] is not None else "")
            + f"; {result['intake']}"
            + (
                f"; during the load PostgreSQL ran {result['postgres_background'][0]} checkpoint(s) and "
                f"{result['postgres_background'][1]} autovacuum/autoanalyze pass(es) on these tables"
                if kind == "postgres"
                else ""
            )
        )
    if args.alerta:
        alerta = bench_alerta(args.rate, args.seconds, args.new_share)
        if isinstance(alerta, str):
            print(f"alerta-server: not measured: {alerta}")
        else:
            print(
                f"alerta/postgres: {alerta['sent']} sent at {alerta['achieved_rate']:.0f}/s, codes {alerta['codes']}; "
                f"intake p50 {alerta['p50_ms']:.1f} ms p99 {alerta['p99_ms']:.1f} ms; alerts {alerta['alerts']}, "
                f"events in DB {alerta['events_in_db']}"
            )
            if "postgres" in results:
                ours = results["postgres"]
                rate_ratio = ours["achieved_rate"] / alerta["achieved_rate"]
                print(
                    f"zhiban/alerta on PostgreSQL: rate reached ratio {rate_ratio:.2f} "
                    f"(above 1: zhiban takes more), p99 ratio {ours['p99_ms'] / alerta['p99_ms']:.4f}, "
                    f"p50 ratio {ours['p50_ms'] / alerta['p50_ms']:.4f} (below 1: zhiban answers faster)"
                )


if __name__ == "__main__":
    main()
