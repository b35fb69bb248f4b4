"""Explicit rules: a breach counts only after N consecutive windows, clears after 3 clean ones, merges 10 s
windows into longer ones, applies per plan; rules are stored and edited through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world
from zhiban.core.errors import InvalidInput
from zhiban.desk import Desk
from zhiban.detect.engine import DetectionEngine
from zhiban.detect.rules import Rule
from zhiban.telemetry.sketch import QuantileSketch, hll_registers
from zhiban.telemetry.window import COUNTED, SKETCHED, SliceKey, WindowAggregate

T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)


def app_window(start: datetime, *, sessions: int = 200, attempts: int = 100, successes: int = 100) -> WindowAggregate:
    """An app-wide 10 s window with these join counts (the other counters clean)."""
    counters = dict.fromkeys(COUNTED, 0.0)
    counters.update(reports=float(sessions), join_attempts=float(attempts), join_successes=float(successes))
    rng = np.random.default_rng(int(start.timestamp()))
    registers = hll_registers(rng.integers(0, 2**63, sessions, dtype=np.uint64))
    return WindowAggregate(
        SliceKey("liveco"), start, 10, counters, dict.fromkeys(SKETCHED, QuantileSketch.empty()), registers
    )


def feed(engine: DetectionEngine, successes: list[int], **kw: int) -> list[tuple[int, str]]:
    """Windows with these join successes out of 100; returns (window index, event kind) of rule events."""
    out = []
    for n, ok in enumerate(successes):
        for event in engine.process([app_window(T0 + timedelta(seconds=10 * n), successes=ok, **kw)]):
            if event.detection.rule is not None:
                out.append((n, event.kind))
    return out


JOIN_99 = Rule("join-99", "join_success_rate", "below", 0.99, window_seconds=10, consecutive=2)


def test_a_rule_fires_after_n_consecutive_windows_and_clears_after_three_clean() -> None:
    engine = DetectionEngine(rules=[JOIN_99])
    # One bad window alone does not fire; two in a row do; three clean windows close it.
    events = feed(engine, [100, 97, 100, 97, 98, 96, 100, 100, 99, 100])
    assert events == [(4, "opened"), (8, "closed")]


def test_the_detection_of_a_rule_reads_like_a_detection() -> None:
    engine = DetectionEngine(rules=[JOIN_99])
    events = []
    for n, ok in enumerate([95, 94]):
        events += engine.process([app_window(T0 + timedelta(seconds=10 * n), successes=ok)])
    detection = events[0].detection
    line = detection.to_json()
    assert line["rule"] == "join-99" and line["metric"] == "join_success_rate" and line["direction"] == "down"
    assert line["opened_at"] == "2026-11-20T19:00:00Z" and line["closed_at"] is None
    assert line["baseline"] == 0.99 and line["observed"] == pytest.approx(0.94)
    assert line["sessions"] >= 190


def test_longer_windows_merge_the_ten_second_ones() -> None:
    rule = Rule("join-99-30s", "join_success_rate", "below", 0.99, window_seconds=30, consecutive=1)
    engine = DetectionEngine(rules=[rule])
    # 100 + 100 + 97 of 300 = 99.0 %: not below; the next 30 s (99+99+99 of 300 = 99 %) neither;
    # then 98+99+99 = 98.67 %: below.
    events = feed(engine, [100, 100, 97, 99, 99, 99, 98, 99, 99])
    assert events == [(8, "opened")]


def test_low_volume_windows_neither_breach_nor_clear() -> None:
    engine = DetectionEngine(rules=[JOIN_99])
    assert feed(engine, [50, 50, 50], sessions=5) == []


def test_rules_apply_per_plan() -> None:
    enterprise = Rule("ent", "join_success_rate", "below", 0.99, window_seconds=10, consecutive=1, plan="enterprise")
    basic = DetectionEngine(rules=[enterprise], plan_of=lambda app: "basic")
    assert feed(basic, [90, 90]) == []
    ent = DetectionEngine(rules=[enterprise], plan_of=lambda app: "Enterprise")
    assert feed(ent, [90, 90]) == [(0, "opened")]


@pytest.mark.parametrize(
    "fields",
    [
        {"metric": "nonsense"},
        {"comparison": "between"},
        {"window_seconds": 15},
        {"consecutive": 0},
        {"name": ""},
    ],
)
def test_bad_rules_are_refused(fields: dict[str, object]) -> None:
    data = {"name": "r", "metric": "mos", "comparison": "below", "threshold": 3.5} | fields
    with pytest.raises(InvalidInput):
        Rule.from_json(data)


def test_rules_are_stored_and_edited_by_admins_only(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    body = {"name": "ent-join-99", "metric": "join_success_rate", "comparison": "below", "threshold": 0.99,
            "window_seconds": 60, "consecutive": 2, "plan": "enterprise"}  # fmt: skip
    assert client.post("/api/v1/detect/rules", json=body, headers=bearer(w.agent_token)).status_code == 403
    made = client.post("/api/v1/detect/rules", json=body, headers=bearer(w.admin_token))
    assert made.status_code == 201, made.text
    rule_id = made.json()["id"]
    again = client.post("/api/v1/detect/rules", json=body, headers=bearer(w.admin_token))
    assert again.status_code == 409
    changed = client.patch(f"/api/v1/detect/rules/{rule_id}", json={"threshold": 0.995}, headers=bearer(w.admin_token))
    assert changed.status_code == 200 and changed.json()["threshold"] == 0.995
    bad = client.patch(f"/api/v1/detect/rules/{rule_id}", json={"window_seconds": 15}, headers=bearer(w.admin_token))
    assert bad.status_code == 422
    listed = client.get("/api/v1/detect/rules", headers=bearer(w.agent_token)).json()
    assert [(r["name"], r["threshold"], r["plan"]) for r in listed] == [("ent-join-99", 0.995, "enterprise")]
    assert client.get("/api/v1/detect/rules", headers=bearer(w.alice_token)).status_code == 403
    assert client.delete(f"/api/v1/detect/rules/{rule_id}", headers=bearer(w.admin_token)).status_code == 204
    assert client.get("/api/v1/detect/rules", headers=bearer(w.agent_token)).json() == []
