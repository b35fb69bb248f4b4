"""Prometheus counters of the job engine (exposed by whichever process serves /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

JOBS_CLAIMED = Counter("zhiban_jobs_claimed_total", "Job runs claimed by workers", ["kind"])
JOBS_FINISHED = Counter(
    "zhiban_jobs_finished_total",
    "Job runs ended, by outcome: done, retry, dead, or lost (the run no longer held its lease)",
    ["kind", "outcome"],
)
JOB_RUN_SECONDS = Histogram("zhiban_job_run_seconds", "Time a handler took to run", ["kind"])
