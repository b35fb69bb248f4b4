"""Prometheus counters of the job engine (in the desk's registry: /metrics of a process that runs a worker)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from zhiban.core.metrics import REGISTRY

JOBS_CLAIMED = Counter("zhiban_jobs_claimed_total", "Job runs claimed by workers", ["kind"], registry=REGISTRY)
JOBS_FINISHED = Counter(
    "zhiban_jobs_finished_total",
    "Job runs ended, by outcome: done, retry, dead, or lost (the run no longer held its lease)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
JOB_RUN_SECONDS = Histogram("zhiban_job_run_seconds", "Time a handler took to run", ["kind"], registry=REGISTRY)
