"""Job handlers of status pages: the timeline scan and the fan-out of notices to subscribers."""

from __future__ import annotations

from zhiban.engine import JobRegistry
from zhiban.status.service import FANOUT_JOB, SCAN_JOB, fanout, scan

registry = JobRegistry()
registry.add(SCAN_JOB, scan)
registry.add(FANOUT_JOB, fanout)
