"""The NAB harness on a tiny corpus laid out like a NAB checkout."""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.detect.nab import main, read_series, run_nab

START = datetime(2015, 3, 1)
STEP = timedelta(minutes=5)


def stamp(i: int) -> str:
    return (START + i * STEP).strftime("%Y-%m-%d %H:%M:%S")


def write_series(path: Path, values: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "value"])
        out.writerows([stamp(i), v] for i, v in enumerate(values))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    rng = random.Random(3)
    step = [10 + rng.gauss(0, 1) for _ in range(1200)]
    step[900:] = [v + 20 for v in step[900:]]
    write_series(tmp_path / "data" / "synthetic" / "step.csv", step)
    write_series(tmp_path / "data" / "synthetic" / "quiet.csv", [5 + rng.gauss(0, 1) for _ in range(800)])
    labels = {
        "synthetic/step.csv": [[stamp(880) + ".000000", stamp(940) + ".000000"]],
        "synthetic/quiet.csv": [],
    }
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    return tmp_path


def test_run_writes_nab_results_and_scores_all_profiles(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = run_nab(corpus, out)
    assert set(result.profiles) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert result.rows == 2000
    with (out / "synthetic" / "zhiban_step.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == 1201
    assert rows[1][0] == "2015-03-01 00:00:00"
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows[1:])
    # The step sits 20 rows into its 61-row window: caught early, so well above null (0).
    step = result.tallies["synthetic/step.csv"]
    assert (step.tp, step.fn) == (1, 0)
    assert result.profiles["standard"].normalized > 50


def test_cli_prints_the_three_profiles(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(corpus), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    for name in ("standard", "reward_low_FP_rate", "reward_low_FN_rate", "total"):
        assert name in printed


def test_bad_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,val\n2015-01-01 00:00:00,1\n")
    with pytest.raises(InvalidInput):
        read_series(bad)
    bad.write_text("timestamp,value\n2015-01-01 00:00:00,abc\n")
    with pytest.raises(InvalidInput):
        read_series(bad)
    assert main(["--data", str(tmp_path)]) == 2
