"""Job handlers of incidents: escalation steps, acknowledgement timeouts, heartbeats, the auditor."""

from __future__ import annotations

from zhiban.engine import JobRegistry
from zhiban.incidents import hooks  # noqa: F401  (notify must know when an incident no longer wants a page)
from zhiban.incidents.audit import audit
from zhiban.incidents.integrations import HEARTBEAT_JOB, heartbeat_missed
from zhiban.incidents.service import ACK_TIMEOUT_JOB, AUDIT_JOB, ESCALATE_JOB, ack_timed_out, fire_step

registry = JobRegistry()
registry.add(ESCALATE_JOB, fire_step, urgent=True)
registry.add(ACK_TIMEOUT_JOB, ack_timed_out, urgent=True)
registry.add(HEARTBEAT_JOB, heartbeat_missed)
registry.add(AUDIT_JOB, audit)
