"""NAB harness: run the streaming detector over the corpus, write NAB result files, score them.

Run: `.venv/bin/python -m zhiban.detect.nab --out DIR [--data DIR]`.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from zhiban.core.errors import InvalidInput
from zhiban.detect.core import Detector, DetectorParams
from zhiban.detect.nab_scoring import (
    PROFILES,
    FileLayout,
    ProfileScore,
    Tally,
    best_threshold,
    layout_file,
    tally_file,
)

DEFAULT_DATA_DIR = Path("/work/shared/data/nab")
DETECTOR_NAME = "zhiban"
MAX_ROWS_PER_FILE = 1_000_000  # bounded input: NAB's largest file has ~22k rows


@dataclass(frozen=True)
class NabFile:
    """One corpus file: relative name (`category/file.csv`), rows and labelled row windows."""

    name: str
    timestamps: list[datetime]
    values: np.ndarray
    windows: list[tuple[int, int]]


@dataclass
class NabResult:
    """Scores of one corpus run (per profile), per-file tallies at the standard threshold, time."""

    profiles: dict[str, ProfileScore]
    tallies: dict[str, Tally] = field(default_factory=dict)
    detect_seconds: float = 0.0
    total_seconds: float = 0.0
    rows: int = 0

    def summary(self) -> str:
        """Human-readable lines: one per profile and the timing."""
        lines = [
            f"{p.profile:<20} {p.normalized:6.2f}  (threshold {p.threshold:.4f}, raw {p.raw:.2f})"
            for p in self.profiles.values()
        ]
        lines.append(f"rows {self.rows}  detector {self.detect_seconds:.1f} s  total {self.total_seconds:.1f} s")
        return "\n".join(lines)


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"bad timestamp {text!r}") from exc


def read_series(path: Path) -> tuple[list[datetime], np.ndarray]:
    """Read a NAB data file (`timestamp,value` header)."""
    stamps: list[datetime] = []
    values: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise InvalidInput(f"{path}: header must be timestamp,value")
        for row in reader:
            if len(stamps) >= MAX_ROWS_PER_FILE:
                raise InvalidInput(f"{path}: more than {MAX_ROWS_PER_FILE} rows")
            stamps.append(_parse_time(row[0]))
            try:
                values.append(float(row[1]))
            except (IndexError, ValueError) as exc:
                raise InvalidInput(f"{path}: bad value in row {len(stamps)}") from exc
    return stamps, np.asarray(values, dtype=np.float64)


def _window_rows(stamps: list[datetime], limits: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """Map window timestamps to inclusive row ranges (NAB's window limits are row timestamps)."""
    # NAB finds a limit by its first exact match; a few files repeat timestamps, so no bisect then.
    first: dict[datetime, int] = {}
    for i, t in enumerate(stamps):
        first.setdefault(t, i)
    rows = []
    for start, end in limits:
        t0, t1 = _parse_time(start), _parse_time(end)
        left = first.get(t0, bisect.bisect_left(stamps, t0))
        right = first.get(t1, bisect.bisect_right(stamps, t1) - 1)
        if left <= right:
            rows.append((left, right))
    return sorted(rows)


def load_corpus(data_dir: Path) -> list[NabFile]:
    """Load every data file with its windows from a NAB checkout (data/, labels/)."""
    labels_path = data_dir / "labels" / "combined_windows.json"
    if not labels_path.is_file():
        raise InvalidInput(f"{labels_path} not found")
    labels: dict[str, list[list[str]]] = json.loads(labels_path.read_text())
    files = []
    for name in sorted(labels):
        stamps, values = read_series(data_dir / "data" / name)
        files.append(NabFile(name, stamps, values, _window_rows(stamps, labels[name])))
    return files


def run_detector(file: NabFile, params: DetectorParams) -> np.ndarray:
    """Stream one file through a fresh detector; returns one score per row."""
    detector = Detector(params)
    update = detector.update
    epoch = [t.timestamp() for t in file.timestamps]
    return np.fromiter((update(t, v) for t, v in zip(epoch, file.values.tolist(), strict=True)), float, len(epoch))


def write_results(out_dir: Path, file: NabFile, scores: np.ndarray, detector_name: str = DETECTOR_NAME) -> Path:
    """Write `out_dir/<category>/<detector>_<file>.csv` in NAB's results format."""
    category, base = file.name.split("/", 1)
    path = out_dir / category / f"{detector_name}_{base}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "value", "anomaly_score"])
        for t, v, s in zip(file.timestamps, file.values.tolist(), scores.tolist(), strict=True):
            out.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), repr(v), f"{s:.6f}"])
    return path


def score_corpus(
    files: Sequence[NabFile], scores: Sequence[np.ndarray]
) -> tuple[dict[str, ProfileScore], dict[str, Tally]]:
    """Score the corpus under every profile; tallies per file at the standard threshold."""
    layouts: list[FileLayout] = [layout_file(len(f.timestamps), f.windows) for f in files]
    # Scores are written with 6 decimals: score what is written, so results files re-score the same.
    rounded = [np.round(s, 6) for s in scores]
    profiles = {p.name: best_threshold(layouts, rounded, p) for p in PROFILES}
    std = profiles["standard"]
    tallies = {
        f.name: tally_file(lay, s, std.threshold, PROFILES[0])
        for f, lay, s in zip(files, layouts, rounded, strict=True)
    }
    return profiles, tallies


def run_nab(
    data_dir: Path,
    out_dir: Path | None,
    params: DetectorParams | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> NabResult:
    """Run the detector over every NAB file, write results (if `out_dir`) and score them."""
    params = params or DetectorParams()
    started = time.perf_counter()
    files = load_corpus(data_dir)
    detect_time = 0.0
    all_scores = []
    for f in files:
        t0 = time.perf_counter()
        scores = run_detector(f, params)
        detect_time += time.perf_counter() - t0
        all_scores.append(scores)
        if out_dir is not None:
            write_results(out_dir, f, scores)
        if progress:
            progress(f.name)
    profiles, tallies = score_corpus(files, all_scores)
    return NabResult(
        profiles=profiles,
        tallies=tallies,
        detect_seconds=detect_time,
        total_seconds=time.perf_counter() - started,
        rows=sum(len(f.timestamps) for f in files),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: run and print the three profile scores and the run time."""
    parser = argparse.ArgumentParser(prog="python -m zhiban.detect.nab", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="NAB checkout (data/, labels/)")
    parser.add_argument("--out", type=Path, default=None, help="where to write NAB-format result files")
    parser.add_argument("--per-file", action="store_true", help="print TP/FN/FP per file (standard threshold)")
    args = parser.parse_args(argv)
    try:
        result = run_nab(args.data, args.out)
    except InvalidInput as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    if args.per_file:
        for name, t in result.tallies.items():
            print(f"{name:<60} tp {t.tp:2d} fn {t.fn:2d} fp {t.fp:3d} raw {t.raw:7.3f}")
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
