"""HTTP ingest benchmark: gzip NDJSON batches of 1,000 reports against a real uvicorn server on 127.0.0.1.

Run: `.venv/bin/python bench/bench_ingest_http.py` (`--rounds 3 --batches 40` for a shorter run).
The server is what `zhiban serve` runs for telemetry: the FastAPI app, the in-process bus and the
pipeline thread (aggregation, window persistence, raw reports) on SQLite (WAL), all in one process.
Target: ≥ 50,000 reports/s accepted (202) on this 2-core machine, and no report lost: after the
server shuts down (flushing its open windows), Σ reports in the stored 10 s windows = reports sent.

The machine is shared, so beside the wall-clock rate each round prints the load average and the CPU
time the server process and this load generator used: reports per server CPU-second is the figure that
does not depend on the neighbours (a server that needs less than one core per 50,000 reports/s can reach
the target whenever it gets a core).
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

TARGET = 50_000.0
T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
REGIONS = ("cn-east", "cn-north", "cn-south", "ap-southeast")
ISPS = ("china-mobile", "china-unicom", "china-telecom")
NETWORKS = ("wifi", "4g", "5g")
PLATFORMS = ("android", "ios", "web")


BATCHES_PER_TICK = 20  # 20,000 sessions report each 10 s interval, as live traffic does


def batch(k: int, size: int) -> bytes:
    """Batch k: `size` sessions (their own, among 20,000) reporting one 10 s interval."""
    ts = (T0 + timedelta(seconds=10 * (k // BATCHES_PER_TICK))).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = []
    for j in range((k % BATCHES_PER_TICK) * size, (k % BATCHES_PER_TICK + 1) * size):
        lines.append(
            orjson.dumps(
                {
                    "v": 1,
                    "app_id": "benchapp",
                    "ts": ts,
                    "interval_ms": 10000,
                    "session_id": f"s-{j}",
                    "user_id": f"u{j}",
                    "channel": f"room-{j // 50}",
                    "role": "audience",
                    "region": REGIONS[j % 4],
                    "country": "CN",
                    "isp": ISPS[j % 3],
                    "network": NETWORKS[j % 3],
                    "platform": PLATFORMS[j % 3],
                    "sdk_version": "4.3.2",
                    "edge": f"edge-{j % 12:02d}",
                    "audio": {"active_ms": 10000, "freeze_ms": j % 7 * 10, "loss_pct": (j % 10) / 10, "jitter_ms": 12},
                    "video": {"active_ms": 10000, "freeze_ms": j % 5 * 100, "fps": 15, "e2e_delay_ms": 150 + j % 90},
                    "net": {"rtt_ms": 30 + j % 70, "downlink_loss_pct": 0.3},
                }
            )
        )
    return gzip.compress(b"\n".join(lines), compresslevel=5)


def serve(database_url: str, port: int) -> None:
    """The server process (`--serve`): like `zhiban serve`, telemetry parts only."""
    import uvicorn

    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.telemetry.live import start_telemetry
    from zhiban.web.app import create_app

    desk = Desk(settings=Settings(database_url=database_url, var_dir=str(Path(database_url[10:]).parent / "var")))
    stop = threading.Event()
    runtime = start_telemetry(desk, stop)
    try:
        uvicorn.run(create_app(desk), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        stop.set()
        if runtime.thread is not None:
            runtime.thread.join(timeout=300)
        print(orjson.dumps(runtime.pipeline.stats.__dict__).decode(), flush=True)


def setup(database_url: str) -> str:
    """Schema, an organization and the bench app; returns its ingest key."""
    import zhiban.store.models  # noqa: F401
    from zhiban.apps import service as apps
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.identity import service as identity
    from zhiban.store.db import Base

    desk = Desk(settings=Settings(database_url=database_url), secret_key="bench")
    Base.metadata.create_all(desk.db)
    with desk.transaction() as s:
        org = identity.create_organization(s, desk.clock, name="Bench", slug="bench")
        key = apps.create_app(s, desk.clock, apps.SYSTEM, app_id="benchapp", organization_id=org.id).ingest_key
    desk.db.dispose()
    return key


def stored_reports(database_url: str) -> int:
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.telemetry import store

    desk = Desk(settings=Settings(database_url=database_url), secret_key="bench")
    with desk.transaction() as s:
        return store.count_reports(s, "benchapp")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=60, help="batches of 1,000 reports per round")
    parser.add_argument("--senders", type=int, default=4, help="concurrent HTTP connections")
    parser.add_argument("--serve", nargs=2, metavar=("DATABASE_URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    rounds, per_round, size = min(args.rounds, 20), min(args.batches, 500), 1000
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        key = setup(url)
        port = free_port()
        env = {**os.environ, "ZHIBAN_TELEMETRY_PARTITIONS": "4", "ZHIBAN_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, str(port)], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            print(f"preparing {rounds * per_round} gzip NDJSON batches of {size} reports …", flush=True)
            bodies = [batch(k, size) for k in range(rounds * per_round)]
            headers = {
                "Authorization": f"Bearer {key}",
                "Content-Encoding": "gzip",
                "Content-Type": "application/x-ndjson",
            }
            clients = [httpx.Client(base_url=base, headers=headers, timeout=60) for _ in range(args.senders)]
            accepted = 0
            rates = []
            server_cpu = 0.0
            loads = []

            def send(i: int) -> int:
                response = clients[i % len(clients)].post("/api/v1/telemetry", content=bodies[i])
                if response.status_code != 202:
                    raise SystemExit(f"batch {i}: HTTP {response.status_code} {response.text[:200]}")
                body = response.json()
                assert not body["rejected"] and body["duplicates"] == 0, body
                return int(body["accepted"])

            with ThreadPoolExecutor(args.senders) as pool:
                for r in range(rounds):
                    began = time.perf_counter()
                    cpu_began, own_began = process_cpu_seconds(server.pid), own_cpu_seconds()
                    got = sum(pool.map(send, range(r * per_round, (r + 1) * per_round)))
                    seconds = time.perf_counter() - began
                    cpu = process_cpu_seconds(server.pid) - cpu_began
                    own = own_cpu_seconds() - own_began
                    load = os.getloadavg()[0]
                    server_cpu += cpu
                    loads.append(load)
                    accepted += got
                    rates.append(got / seconds)
                    print(
                        f"round {r + 1}: {got:,} reports in {seconds:.2f} s = {got / seconds:,.0f} reports/s"
                        f" | server CPU {cpu:.2f} s ({got / max(cpu, 1e-9):,.0f} reports/CPU-s),"
                        f" load generator CPU {own:.2f} s, load average {load:.1f}",
                        flush=True,
                    )
            for client in clients:
                client.close()
        finally:
            drain_began = time.perf_counter()
            server.send_signal(signal.SIGINT)  # uvicorn shuts down; the pipeline flushes its open windows
            out, _ = server.communicate(timeout=600)
            drain_seconds = time.perf_counter() - drain_began
        stats = out.strip().splitlines()[-1] if out.strip() else "{}"
        stored = stored_reports(url)
        median = statistics.median(rates)
        print(f"pipeline: {stats}")
        print(f"sent {rounds * per_round * size:,}, accepted {accepted:,}, stored in 10 s windows {stored:,}")
        print(f"shutdown (pipeline catches up, flushes its windows): {drain_seconds:.1f} s")
        print(
            f"server: {accepted / max(server_cpu, 1e-9):,.0f} reports per CPU-second during the rounds;"
            f" load average {min(loads):.1f}–{max(loads):.1f}"
        )
        print(f"median {median:,.0f} reports/s over {rounds} rounds; target {TARGET:,.0f}; ratio {median / TARGET:.2f}")
        if stored != rounds * per_round * size:
            raise SystemExit(f"LOST REPORTS: {rounds * per_round * size - stored}")


if __name__ == "__main__":
    main()
