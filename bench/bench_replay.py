"""`zhiban detect replay` throughput and memory on a ~1 M-report recording (issue 16, item 3).

    uv run --frozen python bench/bench_replay.py [--recording FILE] [--hours 24 --peak 100 --seed 0]

Without --recording it simulates one day of the three demo apps (peak 100 concurrent sessions per app:
~1.15 M reports, as sparse per window as the issue's two-day recordings) with two faults, into
/tmp/zhiban-bench-replay/ (kept for the next run; never in the repository). The replay runs as the
installed command, in a child process; its CPU seconds and peak RSS come from the kernel (wait4's rusage
of that child), so other agents' load on the machine inflates the wall time but not the CPU figure.

Goal: ≥ 50,000 reports/s and < 1 GB peak RSS. Baseline (main at 012f673, the issue's figures): 7,000
reports/s (1.16 M reports in 164 s) and 3.2 GB peak RSS; on the default recording at 012f673: 262.6 CPU s
(4,400 reports/s per CPU second) and 1.29 GB peak RSS (BASELINE_* below).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

GOAL_REPORTS_PER_S = 50_000
GOAL_RSS_BYTES = 1_000_000_000
ISSUE_REPORTS_PER_S = 7_000  # issue 16: 1.16 M reports in 164 s
ISSUE_RSS_BYTES = 3_200_000_000
# 012f673 (detect/ and telemetry/ as on main at 18b949d) on the default recording (1,153,049 reports,
# 860,262 windows), measured under load ~9 on 2 shared cores: 262.6 CPU s (4,400 reports/s), 1.29 GB peak RSS.
BASELINE_CPU_S = 262.6
BASELINE_RSS_BYTES = 1_289_000_000
CACHE = Path(tempfile.gettempdir()) / "zhiban-bench-replay"
START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def recording(hours: int, peak: int, seed: int) -> Path:
    """The default recording, simulated once and kept under /tmp."""
    from zhiban.telemetry.simulator import demo_apps, simulate_to_file
    from zhiban.telemetry.simulator_faults import Fault

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"day-{hours}h-peak{peak}-seed{seed}.ndjson.gz"
    if path.exists():
        return path
    faults = [
        Fault("edge_packet_loss", "liveco", START + timedelta(hours=10), timedelta(minutes=20), {"edge": "sh-edge-07"}),
        Fault(
            "isp_congestion", "classmate", START + timedelta(hours=13), timedelta(minutes=15), {"isp": "china-mobile"}
        ),
    ]
    partial = path.with_suffix(".partial")
    simulate_to_file(
        partial, demo_apps(peak), faults, seed=seed, start=START, duration=timedelta(hours=hours), progress=False
    )
    partial.rename(path)
    return path


def replay_child(path: Path, out: Path) -> tuple[dict[str, object], float, float, int]:
    """Run the replay as its own process: (its JSON summary, wall s, CPU s, peak RSS bytes)."""
    installed = Path(sys.executable).with_name("zhiban")  # the installed command, as the issue timed it
    command = [str(installed), "detect", "replay", str(path), "--out", str(out)]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"replay failed with exit code {child.returncode}")
    summary = orjson.loads(output.splitlines()[-1])
    return summary, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024  # (Linux: KiB)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", type=Path, help="NDJSON(.gz) to replay (default: simulate one day)")
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--peak", type=int, default=100, help="peak concurrent sessions per app")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = args.recording or recording(args.hours, args.peak, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        summary, wall, cpu, rss = replay_child(path, Path(tmp) / "detections.ndjson")
    reports = int(summary["reports"])  # type: ignore[call-overload]
    per_cpu = reports / cpu if cpu > 0 else 0.0
    load = os.getloadavg()
    print(f"recording        {path} ({reports:,} reports, {summary['windows']:,} windows)")
    print(f"detections       {summary['detections']}  failures {summary['failures']}")
    print(f"CPU              {cpu:.1f} s  -> {per_cpu:,.0f} reports/s per CPU second")
    print(f"wall             {wall:.1f} s  -> {reports / wall:,.0f} reports/s "
          f"(load {load[0]:.1f} on {os.cpu_count()} cores)")  # fmt: skip
    print(f"peak RSS         {rss / 1e6:,.0f} MB")
    print(f"vs goal          {per_cpu / GOAL_REPORTS_PER_S:.2f}x of {GOAL_REPORTS_PER_S:,} reports/s; "
          f"RSS {rss / GOAL_RSS_BYTES:.2f}x of {GOAL_RSS_BYTES / 1e9:.0f} GB")  # fmt: skip
    print(f"vs issue (012f673) {per_cpu / ISSUE_REPORTS_PER_S:.1f}x faster than {ISSUE_REPORTS_PER_S:,} reports/s; "
          f"RSS {rss / ISSUE_RSS_BYTES:.2f}x of {ISSUE_RSS_BYTES / 1e9:.1f} GB")  # fmt: skip
    if BASELINE_CPU_S and args.recording is None and (args.hours, args.peak, args.seed) == (24, 100, 0):
        print(f"vs 012f673 here  {BASELINE_CPU_S / cpu:.1f}x less CPU ({BASELINE_CPU_S:.0f} s); "
              f"RSS {rss / BASELINE_RSS_BYTES:.2f}x of {BASELINE_RSS_BYTES / 1e6:,.0f} MB")  # fmt: skip
    ok = per_cpu >= GOAL_REPORTS_PER_S and rss < GOAL_RSS_BYTES
    print("goal met" if ok else "goal NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
