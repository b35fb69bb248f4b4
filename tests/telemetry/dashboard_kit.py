"""A small telemetry world for the dashboard tests: two tenants' apps, reports sent through the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.tenancy import World, build_world
from zhiban.apps import service as apps
from zhiban.desk import Desk
from zhiban.telemetry.bus import MemoryBus
from zhiban.telemetry.live import TelemetryRuntime, TelemetrySettings
from zhiban.telemetry.pipeline import PipelineOptions

T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)  # the desk fixture's clock
START = T0 - timedelta(minutes=3)  # reports cover [START, START + 3 min)
EAST_FREEZE_MS = 900
NORTH_FREEZE_MS = 100


def quality_report(
    session_id: str, at: datetime, region: str, *, app_id: str = "liveco", **extra: Any
) -> dict[str, Any]:
    """A version-1 report of one 10 s interval (TELEMETRY.md §1)."""
    body: dict[str, Any] = {
        "v": 1,
        "app_id": app_id,
        "ts": int(at.timestamp() * 1000),
        "interval_ms": 10000,
        "session_id": session_id,
        "channel": "room-8812",
        "region": region,
        "isp": "china-mobile" if region == "cn-east" else "china-unicom",
        "platform": "android",
        "video": {
            "active_ms": 10000,
            "freeze_ms": EAST_FREEZE_MS if region == "cn-east" else NORTH_FREEZE_MS,
            "fps": 15,
            "e2e_delay_ms": 300 if region == "cn-east" else 150,
        },
        "audio": {"active_ms": 10000, "freeze_ms": 0, "loss_pct": 0.5, "jitter_ms": 10},
        "net": {"rtt_ms": 60},
    }
    body.update(extra)
    return body


def traffic() -> list[dict[str, Any]]:
    """18 windows × 6 sessions (3 in cn-east, 3 in cn-north); s0 joins, fails once, reconnects."""
    out = []
    for k in range(18):
        at = START + timedelta(seconds=10 * k + 2)
        for i in range(6):
            extra: dict[str, Any] = {}
            if i == 0 and k == 0:
                extra["events"] = [{"type": "join", "ok": False, "error_code": 17}]
            if i == 0 and k == 1:
                extra["events"] = [
                    {"type": "join", "ok": True, "latency_ms": 820},
                    {"type": "first_frame", "latency_ms": 400},
                ]
            if i == 0 and k == 5:
                extra["events"] = [{"type": "reconnect"}]
            out.append(quality_report(f"s{i}", at, "cn-east" if i < 3 else "cn-north", **extra))
    return out


@dataclass
class TelemetryWorld:
    world: World
    runtime: TelemetryRuntime
    sent: list[dict[str, Any]]


def build_telemetry_world(desk: Desk) -> TelemetryWorld:
    """Two tenants with an app each; LiveCo's traffic counted and persisted by the real pipeline."""
    world = build_world(desk)
    with desk.transaction() as s:
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="liveco", organization_id=world.liveco, name="LiveCo Live")
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="classmate-app", organization_id=world.classmate)
    runtime = TelemetryRuntime(
        desk,
        settings=TelemetrySettings(partitions=2),
        bus=MemoryBus(partitions=2),
        pipeline_options=PipelineOptions(prune_every_seconds=1e9),
    )
    sent = traffic()
    result = runtime.ingestor.ingest_reports("liveco", sent)
    assert result.accepted == len(sent) and not result.rejected
    other = [quality_report("c1", START + timedelta(seconds=5), "us-east", app_id="classmate-app")]
    runtime.ingestor.ingest_reports("classmate-app", other)
    runtime.drain(flush=True)
    return TelemetryWorld(world, runtime, sent)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
