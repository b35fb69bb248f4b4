"""Group commit of Events v2 alerts: many requests, one transaction (store.group_commit).

Under an alert storm a commit per request is what limits intake (SQLite has one writer; PostgreSQL
pays a round trip and a WAL flush each time). Request handlers hand their parsed event to the
process's intake and wait; one writer thread applies whatever has queued up meanwhile in ONE transaction
(integrations.receive_events_v2_batch) and commits, and only then answers every waiting request. A 202
therefore still means "committed". If a batch fails, its events are applied one per transaction so that
one bad event cannot fail the others.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Histogram
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock
from zhiban.core.errors import RateLimited
from zhiban.core.metrics import REGISTRY
from zhiban.incidents import integrations
from zhiban.incidents.model import AlertEvent
from zhiban.store.group_commit import IDLE_EXIT_SECONDS, LINGER_SECONDS, MAX_BATCH, MAX_QUEUE, GroupCommit, kept_on

BATCH_EVENTS = Histogram(
    "zhiban_alert_intake_batch_events",
    "Alert events committed together in one intake transaction",
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
COMMIT_SECONDS = Histogram(
    "zhiban_alert_intake_commit_seconds",
    "Wall time of one intake transaction, from BEGIN to COMMIT",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)


class IntakeFull(RateLimited):
    """More events wait than the intake holds: the sender should retry (Events v2 answers 429)."""


class EventsIntake(GroupCommit[tuple[str, AlertEvent], None]):
    """One writer thread per process that commits queued events in batches; `submit` waits for the commit."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        max_batch: int = MAX_BATCH,
        max_queue: int = MAX_QUEUE,
        idle_exit: float = IDLE_EXIT_SECONDS,
        linger: float = LINGER_SECONDS,
    ) -> None:
        def apply(session: Session, items: list[tuple[str, AlertEvent]]) -> list[BaseException | None]:
            return list(integrations.receive_events_v2_batch(session, clock, items))

        super().__init__(
            sessions,
            apply,
            name="alert-intake",
            full=lambda: IntakeFull("too many alert events are waiting to be stored; retry shortly"),
            max_batch=max_batch,
            max_queue=max_queue,
            idle_exit=idle_exit,
            linger=linger,
            batch_sizes=BATCH_EVENTS,
            commit_seconds=COMMIT_SECONDS,
        )
        self.clock = clock

    @property
    def events(self) -> int:
        """Events committed so far."""
        return self.items

    async def submit(self, routing_key: str, event: AlertEvent) -> None:
        """Queue a parsed event and return once it is committed; raises EventRejected or IntakeFull."""
        await self.commit((routing_key, event))


def intake_for(owner: object, make: Callable[[], EventsIntake]) -> EventsIntake:
    """The intake of `owner` (e.g. the web app's state), made on first use."""
    return kept_on(owner, "alert_intake", EventsIntake, make)
