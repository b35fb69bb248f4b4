"""E-model MOS exactly as TELEMETRY.md §3 states it, checked against hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest

from zhiban.telemetry.qoe import METRICS, emodel_mos, emodel_mos_array, freeze_rate


def test_mos_of_a_clean_call() -> None:
    # Le = 0 + 0 + 10 = 10 → R = 94.768 − 0.25 = 94.518
    # MOS = 1 + 0.035·94.518 + 7e-6·94.518·34.518·5.482 = 1 + 3.30813 + 0.125200
    assert emodel_mos(0, 0, 0) == pytest.approx(4.43333, abs=1e-4)


def test_mos_beyond_160_ms_uses_the_steep_branch_and_loss() -> None:
    # Le = 200 + 2·10 + 10 = 230 → R = 94.768 − 11 = 83.768; minus 2.5·1 % → 81.268
    # MOS = 1 + 2.84438 + 7e-6·81.268·21.268·18.732 = 1 + 2.84438 + 0.226638
    assert emodel_mos(200, 10, 1) == pytest.approx(4.07102, abs=1e-4)


def test_mos_is_continuous_at_160_ms_and_clamped() -> None:
    assert emodel_mos(149.999, 0, 0) == pytest.approx(emodel_mos(150, 0, 0), abs=1e-4)
    assert emodel_mos(0, 0, 60) == 1.0  # R = −55: the bare cubic would give 6.0; G.107 says MOS 1
    assert emodel_mos(0, 0, 30) > emodel_mos(0, 0, 35) > 1.0  # still falling with loss just above the floor
    assert emodel_mos(0, 0, 0) <= 4.5


def test_vectorized_mos_matches_the_scalar_one_and_keeps_nan() -> None:
    rng = np.random.default_rng(3)
    rtt, jitter, loss = rng.uniform(0, 600, 200), rng.uniform(0, 80, 200), rng.uniform(0, 30, 200)
    expected = [emodel_mos(a, b, c) for a, b, c in zip(rtt, jitter, loss, strict=True)]
    assert emodel_mos_array(rtt, jitter, loss) == pytest.approx(expected)
    assert np.isnan(emodel_mos_array(np.array([np.nan]), np.array([1.0]), np.array([0.0]))[0])


def test_freeze_rate_and_the_metric_table() -> None:
    assert freeze_rate(600, 10_000) == pytest.approx(0.06)
    assert freeze_rate(0, 0) is None
    names = [m.name for m in METRICS]
    assert names == [
        "sessions", "join_success_rate", "join_latency_p95_ms", "video_freeze_rate", "audio_freeze_rate",
        "e2e_delay_p95_ms", "loss_p95_pct", "rtt_p95_ms", "jitter_p95_ms", "mos", "av_sync_p95_ms",
    ]  # fmt: skip
