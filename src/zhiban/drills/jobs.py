"""Job handlers of drills: start at the chosen local time, judge at the end of the window."""

from __future__ import annotations

from zhiban.drills.service import EVALUATE_JOB, START_JOB, evaluate_job, start
from zhiban.engine import JobRegistry

registry = JobRegistry()
registry.add(START_JOB, start)
registry.add(EVALUATE_JOB, evaluate_job)
