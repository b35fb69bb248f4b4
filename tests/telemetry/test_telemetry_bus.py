"""The telemetry bus: partitions by app, explicit acks, redelivery; on a real NATS JetStream and in memory."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest

from tests.conftest import NATS_URL
from zhiban.desk import Desk
from zhiban.telemetry import store
from zhiban.telemetry.bus import Bus, BusConsumer, BusMessage, MemoryBus, NatsBus, partition_of
from zhiban.telemetry.live import Ingestor
from zhiban.telemetry.pipeline import Pipeline

T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)


def require_nats() -> None:
    """Skip locally when NATS is down; in CI a missing server is a failure."""
    url = urlparse(NATS_URL)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 4222), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"NATS is not reachable at {NATS_URL}")
        pytest.skip("NATS is not reachable")


def two_apps_on_different_partitions(partitions: int = 2) -> tuple[str, str]:
    names = [f"app-{i}" for i in range(50)]
    a = next(n for n in names if partition_of(n, partitions) == 0)
    b = next(n for n in names if partition_of(n, partitions) == 1)
    return a, b


def report(app_id: str, session_id: str, seconds: float) -> dict[str, Any]:
    ts = T0 + timedelta(seconds=seconds)
    return {"v": 1, "app_id": app_id, "ts": int(ts.timestamp() * 1000), "session_id": session_id, "region": "r1"}


def fetch_all(consumer: BusConsumer, want: int, timeout: float = 5.0) -> list[BusMessage]:
    got: list[BusMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(consumer.fetch(64, timeout=0.5))
    return got


@pytest.fixture
def nats_bus() -> Iterator[NatsBus]:
    require_nats()
    tag = uuid.uuid4().hex[:8]
    bus = NatsBus(NATS_URL, partitions=2, stream=f"ZHIBAN_TEST_{tag}", prefix=f"t{tag}", ack_wait_s=1.0)
    yield bus
    bus.delete_stream()
    bus.close()


@pytest.fixture
def memory_bus() -> MemoryBus:
    return MemoryBus(partitions=2, ack_wait_s=0.0)


@pytest.fixture(params=["memory", "nats"])
def bus(request: pytest.FixtureRequest) -> Bus:
    fixture: Bus = request.getfixturevalue(f"{request.param}_bus")
    return fixture


def test_each_consumer_gets_only_its_partitions_batches(bus: Bus) -> None:
    a, b = two_apps_on_different_partitions()
    ingest = Ingestor(bus)
    for i in range(3):
        assert ingest.ingest_reports(a, [report(a, f"s{i}", 1)]).accepted == 1
        assert ingest.ingest_reports(b, [report(b, f"s{i}", 1)]).accepted == 1
    first, second = bus.consumer([0]), bus.consumer([1])
    got_first, got_second = fetch_all(first, 3), fetch_all(second, 3)
    assert {m.subject for m in got_first} == {bus.subject_for(a)} and len(got_first) == 3
    assert {m.subject for m in got_second} == {bus.subject_for(b)} and len(got_second) == 3
    for message in got_first + got_second:
        message.ack()
    assert first.fetch(10, timeout=0.2) == [] and second.fetch(10, timeout=0.2) == []


def test_a_repeated_msg_id_is_stored_once(bus: Bus) -> None:
    subject = bus.subject_for("liveco")
    bus.publish(subject, b'{"x": 1}', "same-id")
    bus.publish(subject, b'{"x": 1}', "same-id")
    bus.publish(subject, b'{"x": 2}', "other-id")
    consumer = bus.consumer(range(bus.partitions))
    got = fetch_all(consumer, 2, timeout=2.0)
    for message in got:
        message.ack()
    got += consumer.fetch(10, timeout=0.3)
    assert sorted(m.msg_id for m in got) == ["other-id", "same-id"]


def test_an_unacked_batch_comes_again_and_is_not_counted_twice(bus: Bus, desk: Desk) -> None:
    a, _ = two_apps_on_different_partitions()
    Ingestor(bus).ingest_reports(a, [report(a, f"s{i}", 1 + i / 10) for i in range(8)])
    pipeline = Pipeline(desk.sessions, clock=desk.clock)
    consumer = bus.consumer([partition_of(a, bus.partitions)])
    first = fetch_all(consumer, 1)
    assert pipeline.handle(first) == 8  # counted; its window is open, so no ack yet
    # ack_wait (1 s on NATS here, 0 in memory) runs out: the same message comes again.
    again = fetch_all(consumer, 1, timeout=10.0)
    assert again and again[0].msg_id == first[0].msg_id and again[0].deliveries >= 2
    assert pipeline.handle(again) == 0
    pipeline.tick(flush=True)  # persists the window, then acks
    with desk.transaction() as s:
        assert store.count_reports(s, a) == 8
    assert pipeline.stats.duplicates == 8 and pipeline.held == 0
    assert consumer.fetch(10, timeout=1.5) == []  # acked: not delivered again


def test_nats_payloads_are_compressed_and_readable(nats_bus: NatsBus) -> None:
    reports = [report("liveco", f"s{i}", 1) for i in range(100)]
    Ingestor(nats_bus).ingest_reports("liveco", reports)
    [message] = fetch_all(nats_bus.consumer(range(2)), 1)
    assert message.data[:2] == b"\x1f\x8b"
    import gzip

    lines = gzip.decompress(message.data).split(b"\n")
    assert [orjson.loads(line)["session_id"] for line in lines] == [r["session_id"] for r in reports]
    message.ack()


def test_the_memory_bus_is_bounded() -> None:
    bus = MemoryBus(partitions=1, max_bytes=100)
    bus.publish("telemetry.0", b"x" * 80, "a")
    with pytest.raises(Exception, match="behind"):
        bus.publish("telemetry.0", b"x" * 80, "b")
    with pytest.raises(Exception, match="not a subject"):
        bus.publish("telemetry.7", b"x", "c")
