"""NAB benchmark: run the detector over the whole corpus, print the three profile scores and the run time.

Usage: .venv/bin/python bench/bench_nab.py [--data DIR] [--out DIR] [--repeat N]
Targets: standard-profile score >= 70 (Numenta HTM 70.5), whole corpus in < 60 s on one core.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from zhiban.detect.nab import DEFAULT_DATA_DIR, run_nab

SCORE_TARGET = 70.0
SECONDS_TARGET = 60.0


def main() -> None:
    """Run the corpus `--repeat` times; print scores, median run time and the ratios to the targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=None, help="keep the NAB result files here")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    totals, detects = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, args.repeat)):
            result = run_nab(args.data, args.out or Path(tmp))
            totals.append(result.total_seconds)
            detects.append(result.detect_seconds)
    for p in result.profiles.values():
        print(f"{p.profile:<20} {p.normalized:6.2f}   threshold {p.threshold:.4f}")
    standard = result.profiles["standard"].normalized
    total = statistics.median(totals)
    print(f"rows {result.rows}, runs {len(totals)}")
    print(
        f"median time: total {total:.1f} s (load + detect + write + score),"
        f" detector alone {statistics.median(detects):.1f} s"
    )
    print(f"standard / {SCORE_TARGET:.0f} target: {standard / SCORE_TARGET:.2f}")
    print(f"time / {SECONDS_TARGET:.0f} s target: {total / SECONDS_TARGET:.2f} (below 1 is within target)")


if __name__ == "__main__":
    main()
