"""Durable jobs and timers: enqueue in your transaction, a worker runs them at least once.

registry = JobRegistry()

@registry.handler("sla.breach")
def on_breach(ctx: JobContext, payload: dict) -> None: ...  # idempotent

enqueue(session, "sla.breach", {"ticket": id}, due_at=due, dedup_key=f"sla.breach:{id}")
Worker(sessions, registry, clock).run_forever(stop)   # or: python -m zhiban.engine --handlers mod
"""

from .model import JobState, backoff_ceiling, retry_delay
from .registry import BatchHandler, Handler, JobContext, JobRegistry, LeaseLost, PermanentFailure
from .service import (
    JobView,
    add_commit_listener,
    cancel,
    enqueue,
    enqueue_many,
    get_job,
    has_job,
    job_counts,
    list_jobs,
    purge_done,
    reschedule,
    retry_job,
)
from .wakeup import urgent_kind
from .worker import Worker, install_signal_handlers

__all__ = [
    "BatchHandler",
    "Handler",
    "JobContext",
    "JobRegistry",
    "JobState",
    "JobView",
    "LeaseLost",
    "PermanentFailure",
    "Worker",
    "add_commit_listener",
    "backoff_ceiling",
    "cancel",
    "enqueue",
    "enqueue_many",
    "get_job",
    "has_job",
    "install_signal_handlers",
    "job_counts",
    "list_jobs",
    "purge_done",
    "reschedule",
    "retry_delay",
    "retry_job",
    "urgent_kind",
]
