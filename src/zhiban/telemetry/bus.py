"""The telemetry bus: accepted batches travel from ingest to the pipeline, partitioned by app.

Subjects are `telemetry.<partition>` with partition = crc32(app_id) % N, so every report of an app lands
in one partition and the worker that owns a partition owns its apps' windows. Delivery is at least once:
a message stays pending until the consumer acks it, and comes again after `ack_wait` if it never does.
Publishing with the same msg_id twice within the duplicate window stores it once (JetStream's
`Nats-Msg-Id`; the memory bus imitates it).

`MemoryBus` is the embedded default (one process); `NatsBus` runs on NATS JetStream
(ZHIBAN_BUS_URL=nats://…) with one durable pull consumer per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from zhiban.core.errors import InvalidInput, RateLimited, ZhibanError

DEFAULT_PARTITIONS: Final = 8
MAX_PARTITIONS: Final = 1024
DUPLICATE_WINDOW_S: Final = 120.0
# Acks are held until the windows a batch fed are persisted (window + lateness + a tick), so ack_wait
# must comfortably exceed that or healthy batches would come again.
DEFAULT_ACK_WAIT_S: Final = 300.0
T = TypeVar("T")


class BusUnavailable(ZhibanError):
    type_ = "bus-unavailable"
    status = 503
    title = "Telemetry bus unavailable"


def partition_of(app_id: str, partitions: int) -> int:
    """The partition of an app: stable across processes and restarts."""
    return zlib.crc32(app_id.encode()) % partitions


def subject_of(prefix: str, partition: int) -> str:
    """`<prefix>.<partition>`, e.g. `telemetry.3`."""
    return f"{prefix}.{partition}"


@dataclass(eq=False)
class BusMessage:
    """One delivered message; `ack()` once its effect is durable, else it is delivered again."""

    subject: str
    data: bytes
    msg_id: str
    deliveries: int
    _ack: Callable[[], None] = field(repr=False)
    acked: bool = False
    # In-process only: the publisher's already-parsed form of `data` (saves the consumer a parse).
    local: Any = field(default=None, repr=False)

    @property
    def partition(self) -> int:
        return int(self.subject.rsplit(".", 1)[1])

    def ack(self) -> None:
        """Acknowledge (idempotent)."""
        if not self.acked:
            self._ack()
            self.acked = True


class BusConsumer(ABC):
    """Pulls messages of some partitions for one owner."""

    partitions: tuple[int, ...]

    @abstractmethod
    def fetch(self, max_messages: int = 64, timeout: float = 1.0) -> list[BusMessage]:
        """Up to max_messages ready messages, waiting at most `timeout` seconds for the first."""

    def close(self) -> None:  # noqa: B027 - optional for consumers with nothing to release
        """Stop pulling (pending messages stay pending and come again to the next owner)."""


class Bus(ABC):
    """Publish bytes on a partition's subject; consume partitions with explicit acks."""

    def __init__(self, *, partitions: int, prefix: str = "telemetry", compress: bool = False) -> None:
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidInput(f"partitions must be within [1, {MAX_PARTITIONS}]")
        self.partitions = partitions
        self.prefix = prefix
        # Whether publishers should gzip payloads (worth it over a network, not in memory).
        self.compress = compress

    def subject_for(self, app_id: str) -> str:
        """The subject an app's batches go to."""
        return subject_of(self.prefix, partition_of(app_id, self.partitions))

    def check_subject(self, subject: str) -> int:
        prefix, _, number = subject.rpartition(".")
        if prefix != self.prefix or not number.isdigit() or int(number) >= self.partitions:
            raise InvalidInput(f"not a subject of this bus: {subject!r}")
        return int(number)

    @abstractmethod
    def publish(self, subject: str, data: bytes, msg_id: str, *, local: Any = None) -> None:
        """Store a message durably (returns once stored); a repeated msg_id is stored once.

        `local` is an in-process shortcut (the parsed form of `data`): a bus that crosses processes ignores it.
        """

    @abstractmethod
    def consumer(self, partitions: Sequence[int]) -> BusConsumer:
        """A consumer of these partitions (one owner per partition at a time)."""

    def close(self) -> None:  # noqa: B027 - optional for buses with nothing to release
        """Release connections."""


# -- in process ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Stored:
    subject: str
    data: bytes
    msg_id: str
    deliveries: int = 0
    deadline: float = 0.0
    local: Any = None


class MemoryBus(Bus):
    """The embedded bus: per-partition queues in memory, bounded in bytes, with acks and redelivery."""

    def __init__(
        self,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        prefix: str = "telemetry",
        ack_wait_s: float = DEFAULT_ACK_WAIT_S,
        max_bytes: int = 256 * 1024 * 1024,
        duplicate_window_s: float = DUPLICATE_WINDOW_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(partitions=partitions, prefix=prefix, compress=False)
        self.ack_wait_s = ack_wait_s
        self.max_bytes = max_bytes
        self.duplicate_window_s = duplicate_window_s
        self._monotonic = monotonic
        self._ready: list[deque[_Stored]] = [deque() for _ in range(partitions)]
        self._pending: list[dict[int, _Stored]] = [{} for _ in range(partitions)]
        self._recent_ids: OrderedDict[str, float] = OrderedDict()
        self._bytes = 0
        self._cond = threading.Condition()

    @property
    def pending_bytes(self) -> int:
        """Bytes held (ready or delivered but not acked)."""
        return self._bytes

    def backlog(self) -> int:
        """Messages not yet acknowledged."""
        with self._cond:
            return sum(len(r) for r in self._ready) + sum(len(p) for p in self._pending)

    def publish(self, subject: str, data: bytes, msg_id: str, *, local: Any = None) -> None:
        partition = self.check_subject(subject)
        now = self._monotonic()
        with self._cond:
            while self._recent_ids and next(iter(self._recent_ids.values())) < now - self.duplicate_window_s:
                self._recent_ids.popitem(last=False)
            if msg_id in self._recent_ids:
                return
            if self._bytes + len(data) > self.max_bytes:
                raise RateLimited("the telemetry pipeline is behind; retry shortly", retry_after=5)
            self._recent_ids[msg_id] = now
            while len(self._recent_ids) > 1_000_000:
                self._recent_ids.popitem(last=False)
            self._ready[partition].append(_Stored(subject, data, msg_id, local=local))
            self._bytes += len(data)
            self._cond.notify_all()

    def consumer(self, partitions: Sequence[int]) -> BusConsumer:
        for p in partitions:
            if not 0 <= p < self.partitions:
                raise InvalidInput(f"no partition {p}")
        return _MemoryConsumer(self, tuple(partitions))

    def _take(self, partitions: tuple[int, ...], max_messages: int) -> list[BusMessage]:
        now = self._monotonic()
        out: list[BusMessage] = []
        for p in partitions:
            pending = self._pending[p]
            expired = [s for s in pending.values() if s.deadline <= now]
            for stored in sorted(expired, key=lambda s: s.deadline):  # redelivery: ack_wait ran out
                if len(out) >= max_messages:
                    return out
                out.append(self._deliver(p, stored, now))
            ready = self._ready[p]
            while ready and len(out) < max_messages:
                out.append(self._deliver(p, ready.popleft(), now))
        return out

    def _deliver(self, partition: int, stored: _Stored, now: float) -> BusMessage:
        stored.deliveries += 1
        stored.deadline = now + self.ack_wait_s
        self._pending[partition][id(stored)] = stored

        def ack() -> None:
            with self._cond:
                if self._pending[partition].pop(id(stored), None) is not None:
                    self._bytes -= len(stored.data)

        return BusMessage(stored.subject, stored.data, stored.msg_id, stored.deliveries, ack, local=stored.local)

    def _fetch(self, partitions: tuple[int, ...], max_messages: int, timeout: float) -> list[BusMessage]:
        end = self._monotonic() + timeout
        with self._cond:
            while True:
                out = self._take(partitions, max_messages)
                left = end - self._monotonic()
                if out or left <= 0:
                    return out
                self._cond.wait(min(left, 0.5))


class _MemoryConsumer(BusConsumer):
    def __init__(self, bus: MemoryBus, partitions: tuple[int, ...]) -> None:
        self.bus = bus
        self.partitions = partitions

    def fetch(self, max_messages: int = 64, timeout: float = 1.0) -> list[BusMessage]:
        return self.bus._fetch(self.partitions, max_messages, timeout)


# -- NATS JetStream --------------------------------------------------------------------------------------


class NatsBus(Bus):
    """JetStream: one work-queue stream `<stream>` with subjects `<prefix>.*`, durable pull consumers per partition.

    nats-py is asyncio; the bus runs its own event loop in a daemon thread so that ingest (a thread pool)
    and the pipeline (a thread) can call it synchronously.
    """

    def __init__(
        self,
        url: str,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        stream: str = "ZHIBAN_TELEMETRY",
        prefix: str = "telemetry",
        ack_wait_s: float = DEFAULT_ACK_WAIT_S,
        max_bytes: int = 4 * 1024**3,
        max_age_s: float = 24 * 3600.0,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(partitions=partitions, prefix=prefix, compress=True)
        import nats  # only when the NATS bus is configured

        self.url = url
        self.stream = stream
        self.ack_wait_s = ack_wait_s
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="zhiban-nats", daemon=True)
        self._thread.start()
        try:
            self._nc = self._run(nats.connect(url, connect_timeout=timeout_s, max_reconnect_attempts=-1))
            self._js = self._nc.jetstream(timeout=timeout_s)
            self._run(self._ensure_stream(max_bytes, max_age_s))
        except Exception as exc:
            self._stop_loop()
            raise BusUnavailable(f"cannot reach NATS JetStream at {url}: {exc}") from exc

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout if timeout is not None else self.timeout_s + 5)

    async def _ensure_stream(self, max_bytes: int, max_age_s: float) -> None:
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.*"],
            # Work queue: a message is gone once acked, so the stream holds only the backlog.
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
            max_bytes=max_bytes,
            max_age=max_age_s,
            # A full stream refuses new batches (ingest answers 503 and senders retry) rather than
            # silently dropping old, un-aggregated ones.
            discard=DiscardPolicy.NEW,
        )
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(config)

    def publish(self, subject: str, data: bytes, msg_id: str, *, local: Any = None) -> None:
        self.check_subject(subject)
        try:
            self._run(self._js.publish(subject, data, stream=self.stream, headers={"Nats-Msg-Id": msg_id}))
        except Exception as exc:
            raise BusUnavailable(f"publishing telemetry to NATS failed: {type(exc).__name__}: {exc}") from exc

    def consumer(self, partitions: Sequence[int]) -> BusConsumer:
        for p in partitions:
            if not 0 <= p < self.partitions:
                raise InvalidInput(f"no partition {p}")
        return _NatsConsumer(self, tuple(partitions))

    def delete_stream(self) -> None:
        """Remove the stream and its consumers (tests, resets)."""
        self._run(self._js.delete_stream(self.stream))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection: nothing left to save
            self._run(self._shutdown())
        self._stop_loop()

    async def _shutdown(self) -> None:
        await self._nc.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


class _NatsConsumer(BusConsumer):
    def __init__(self, bus: NatsBus, partitions: tuple[int, ...]) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig

        self.bus = bus
        self.partitions = partitions
        self._subs: list[Any] = []
        for p in partitions:
            subject = subject_of(bus.prefix, p)
            config = ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=bus.ack_wait_s,
                max_deliver=-1,
                # Acks wait for window persistence: allow a few minutes of batches in flight.
                max_ack_pending=50_000,
            )
            durable = f"{bus.stream.lower()}-{bus.prefix}-p{p}".replace(".", "-")
            self._subs.append(
                bus._run(bus._js.pull_subscribe(subject, durable=durable, stream=bus.stream, config=config))
            )

    def fetch(self, max_messages: int = 64, timeout: float = 1.0) -> list[BusMessage]:
        return self.bus._run(self._fetch(max_messages, timeout), timeout=timeout + self.bus.timeout_s)

    async def _fetch(self, max_messages: int, timeout: float) -> list[BusMessage]:
        import nats.errors

        async def one(sub: Any) -> list[Any]:
            try:
                msgs: list[Any] = await sub.fetch(max_messages, timeout=max(timeout, 0.05))
                return msgs
            except (nats.errors.TimeoutError, TimeoutError):
                return []

        results = await asyncio.gather(*(one(sub) for sub in self._subs))
        out: list[BusMessage] = []
        for msgs in results:
            for msg in msgs:
                out.append(
                    BusMessage(
                        subject=msg.subject,
                        data=msg.data,
                        msg_id=(msg.headers or {}).get("Nats-Msg-Id", ""),
                        deliveries=msg.metadata.num_delivered,
                        _ack=self._acker(msg),
                    )
                )
        return out

    def _acker(self, msg: Any) -> Callable[[], None]:
        def ack() -> None:
            self.bus._run(msg.ack())

        return ack

    def close(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):  # the connection may be gone; the durable consumer stays
                self.bus._run(sub.unsubscribe())
        self._subs = []


def make_bus(url: str, *, partitions: int = DEFAULT_PARTITIONS, **options: Any) -> Bus:
    """The bus for a ZHIBAN_BUS_URL: memory:// (default) or nats://host:port."""
    if url in ("", "memory://") or url.startswith("memory:"):
        return MemoryBus(partitions=partitions, **options)
    if url.startswith(("nats://", "tls://")):
        return NatsBus(url, partitions=partitions, **options)
    raise InvalidInput(f"unsupported bus URL {url!r}: use memory:// or nats://host:port")
