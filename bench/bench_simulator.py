"""Simulator throughput: reports generated per second (target: 20,000/s), and with the NDJSON.gz writer.

Run: .venv/bin/python bench/bench_simulator.py [peak_sessions]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zhiban.telemetry.simulator import NdjsonGzWriter, Simulator, demo_apps
from zhiban.telemetry.simulator_faults import Fault

TARGET = 20_000.0  # "tens of thousands of reports/s"
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # liveco's evening peak


def once(peak: int, write: bool) -> float:
    faults = [
        Fault("edge_packet_loss", "liveco", START + timedelta(minutes=1), timedelta(minutes=2), {"edge": "sh-edge-07"})
    ]
    sim = Simulator(demo_apps(peak), faults, seed=1, start=START)
    with tempfile.TemporaryDirectory() as tmp:
        writer = NdjsonGzWriter(Path(tmp) / "t.ndjson.gz") if write else None
        began, reports = time.perf_counter(), 0
        for batch in sim.run(START + timedelta(minutes=3)):
            reports += len(batch)
            if writer:
                writer.write(batch)
        if writer:
            writer.close()
        return reports / (time.perf_counter() - began)


def main() -> None:
    peak = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    for write in (False, True):
        rates = [once(peak, write) for _ in range(3)]
        median = statistics.median(rates)
        label = "generate + NDJSON.gz" if write else "generate"
        ratio = median / TARGET
        print(f"{label:22s} peak_sessions={peak}/app  median {median:,.0f} reports/s  ratio to target {ratio:.1f}x")


if __name__ == "__main__":
    main()
