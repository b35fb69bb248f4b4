"""NAB benchmark: run the detector over the whole corpus; print the three profile scores, the odd/even
file split (an overfitting check: NAB has no held-out part) and the run time.

Usage: .venv/bin/python bench/bench_nab.py [--data DIR] [--out DIR] [--repeat N]
Targets: standard-profile score >= 70 (Numenta HTM 70.5), whole corpus in < 60 s on one core.
The run is single-process; besides wall time it prints the CPU time of this process and the load
average, because on a shared machine the wall time mostly measures the other tenants.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from zhiban.detect.core import DetectorParams
from zhiban.detect.nab import DEFAULT_DATA_DIR, load_corpus, run_detector, score_corpus, write_results

SCORE_TARGET = 70.0
SECONDS_TARGET = 60.0


def main() -> None:
    """Run the corpus `--repeat` times; print scores, median run time and the ratios to the targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=None, help="also write NAB result files here")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    params = DetectorParams()
    totals, detects, cpus = [], [], []
    load_before = os.getloadavg()[0]
    for _ in range(max(1, args.repeat)):
        started = time.perf_counter()
        cpu_started = time.process_time()
        files = load_corpus(args.data)
        detect = 0.0
        scores: list[np.ndarray] = []
        for f in files:
            t0 = time.perf_counter()
            scores.append(run_detector(f, params))
            detect += time.perf_counter() - t0
            if args.out is not None:
                write_results(args.out, f, scores[-1])
        profiles, _ = score_corpus(files, scores)
        totals.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
        detects.append(detect)
    for p in profiles.values():
        print(f"{p.profile:<20} {p.normalized:6.2f}   threshold {p.threshold:.4f}")
    # Files numbered 1..58 in name order; each half gets its own best threshold.
    for label, start in (("odd-numbered files", 0), ("even-numbered files", 1)):
        part, _ = score_corpus(files[start::2], scores[start::2])
        print(f"{label:<20} " + "  ".join(f"{p.profile} {p.normalized:.2f}" for p in part.values()))
    standard = profiles["standard"].normalized
    total = statistics.median(totals)
    print(f"rows {sum(len(f.timestamps) for f in files)}, runs {len(totals)}")
    cpu = statistics.median(cpus)
    print(
        f"median time: total {total:.1f} s wall (load + detect + score),"
        f" detector alone {statistics.median(detects):.1f} s wall; CPU {cpu:.1f} s (one core)"
    )
    print(f"load average (1 min) before {load_before:.1f}, after {os.getloadavg()[0]:.1f}, cores {os.cpu_count()}")
    print(f"standard / {SCORE_TARGET:.0f} target: {standard / SCORE_TARGET:.2f}")
    print(
        f"time / {SECONDS_TARGET:.0f} s target: wall {total / SECONDS_TARGET:.2f}, CPU {cpu / SECONDS_TARGET:.2f}"
        " (below 1 is within target)"
    )


if __name__ == "__main__":
    main()
