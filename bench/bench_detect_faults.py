"""Detection on the simulator's fault catalogue: detected?, time to detect, slice found vs injected;
false alarms on benign events; and whether detection keeps up with the 50k reports/s ingest target.

    .venv/bin/python bench/bench_detect_faults.py [--seeds 3] [--peak 1400]

Each fault kind is injected (one per run, 2 minutes, after a 4-minute warm-up) on several seeds and
replayed through parse → dedup → aggregate → detect → localize in event time. Time to detect = end of
the window that confirmed the detection − fault start (event time; live adds the pipeline's 30 s of
allowed lateness before a window closes). Time to name the slice = the same for the window whose evidence
named the injected slice: the detection's, or a later one when sparse evidence sharpened it (`refined_at`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import orjson

from zhiban.detect.detections import Detection
from zhiban.detect.engine import DetectionEngine
from zhiban.detect.replay import Replayer, ReplaySummary
from zhiban.telemetry.simulator import Simulator, demo_apps
from zhiban.telemetry.simulator_faults import FAULT_KINDS, Fault

START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
FAULT_AT = START + timedelta(minutes=4)
INGEST_TARGET = 50_000  # reports/s (bench_ingest_http's target)
CATALOGUE = [
    ("edge_packet_loss", "liveco", {"edge": "sh-edge-07"}),
    ("isp_congestion", "classmate", {"isp": "china-mobile"}),
    ("sdk_release_join_failure", "hiyo", {"sdk_version": "5.1.0"}),
    ("av_sync_drift", "hiyo", {"platform": "ios"}),
    ("edge_overload", "classmate", {"edge": "bj-edge-02"}),
    ("app_outage", "liveco", {"region": "cn-north"}),
]
BENIGN = [
    ("evening_ramp", "classmate", {}, 1.0),
    ("festival_surge", "liveco", {}, None),
    ("night_low_volume", "liveco", {}, None),
    ("sdk_rollout", "hiyo", {"platform": "android", "sdk_version": "5.2.0"}, None),
]


class Timed(DetectionEngine):
    """The engine, timing only its own work."""

    busy = 0.0

    def process(self, windows):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            return super().process(windows)
        finally:
            Timed.busy += time.perf_counter() - began


def run(
    apps: list[str], faults: list[Fault], peak: int, seed: int, minutes: float, start: datetime = START
) -> tuple[list[Detection], ReplaySummary]:
    chosen = [a for a in demo_apps(peak_sessions=peak) if a.app_id in apps]
    sim = Simulator(chosen, faults, seed=seed, start=start)
    replayer = Replayer(Timed())
    found: list[Detection] = []
    for batch in sim.run(start + timedelta(minutes=minutes)):
        found.extend(replayer.feed(b"\n".join(map(orjson.dumps, batch))))
    found.extend(replayer.flush())
    found.extend(replayer.engine.open_detections())
    return found, replayer.summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--peak", type=int, default=1400)
    args = parser.parse_args()
    rows, delays, naming, reports, windows = [], [], [], 0, 0
    print(f"{'fault':<26}{'seed':>5}  {'detected':<9}{'delay s':>8}{'named s':>8}  {'slice found':<44}injected")
    for kind, app_id, slice_ in CATALOGUE:
        for seed in range(args.seeds):
            fault = Fault(kind, app_id, FAULT_AT, timedelta(minutes=2), slice_)
            found, summary = run([app_id], [fault], args.peak, seed, 7.0)
            reports, windows = reports + summary.reports, windows + summary.windows
            expected = set(FAULT_KINDS[kind][2])
            mine = [d for d in found if d.app_id == app_id and d.opened_at >= FAULT_AT - timedelta(seconds=20)]
            hit = [d for d in mine if d.metric in expected] or mine
            delay = min(((d.detected_at - FAULT_AT).total_seconds() for d in hit), default=None)
            if delay is not None:
                delays.append(delay)
            naming_ones = [d for d in mine if set(slice_.items()) <= set(d.slice.items())]
            named = bool(naming_ones)
            named_after = min(
                (((d.refined_at or d.detected_at) - FAULT_AT).total_seconds() for d in naming_ones), default=None
            )
            if named_after is not None:
                naming.append(named_after)
            shown = next(
                (d.slice for d in mine if set(slice_.items()) <= set(d.slice.items())), mine[0].slice if mine else {}
            )
            rows.append((kind, bool(hit), named))
            d_text = f"{delay:.0f}" if delay is not None else "-"
            n_text = f"{named_after:.0f}" if named_after is not None else "-"
            found_text = str(shown) + (" ✓" if named else " ✗")
            print(f"{kind:<26}{seed:>5}  {'yes' if hit else 'NO':<9}{d_text:>8}{n_text:>8}  {found_text:<44}{slice_}")
    false_alarms = 0
    print(f"\n{'benign event':<26}{'seed':>5}  detections")
    for kind, app_id, slice_, magnitude in BENIGN:
        for seed in range(args.seeds):
            start = START.replace(hour=19) if kind == "night_low_volume" else START
            event = Fault(kind, app_id, start + timedelta(minutes=4), timedelta(minutes=3), slice_, magnitude)
            found, summary = run([app_id], [event], args.peak, seed, 8.0, start)
            reports, windows = reports + summary.reports, windows + summary.windows
            false_alarms += len(found)
            print(f"{kind:<26}{seed:>5}  {[(d.metric, d.slice, d.severity) for d in found] or 'none'}")
    detected = sum(1 for _, hit, _ in rows if hit)
    localized = sum(1 for _, _, named in rows if named)
    print(f"\ninjected faults detected : {detected}/{len(rows)}")
    print(f"localized to the slice   : {localized}/{len(rows)}")
    median = statistics.median(delays) if delays else float("nan")
    print(
        f"time to detect (event s) : median {median:.0f} (target ≤ 60, ratio {median / 60:.2f}); max {max(delays):.0f}"
    )
    if naming:
        print(f"time to name the slice   : median {statistics.median(naming):.0f}; max {max(naming):.0f} (event s)")
    print(f"benign false alarms      : {false_alarms} (target 0)")
    per_report = windows / max(reports, 1)
    needed = INGEST_TARGET * per_report
    speed = windows / Timed.busy if Timed.busy else float("inf")
    print(f"windows per report       : {per_report:.4f} (demo apps' key cardinality)")
    print(
        f"detection throughput     : {speed:,.0f} windows/s; at {INGEST_TARGET:,} reports/s the pipeline closes "
        f"{needed:,.0f} windows/s → ratio {speed / needed:.1f}× the ingest target"
    )


if __name__ == "__main__":
    main()
