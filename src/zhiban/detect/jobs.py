"""Job handlers of detection: `detect.sync` brings incidents and customer notices in line with detections."""

from __future__ import annotations

from zhiban.detect.incident_sync import sync
from zhiban.detect.service import SYNC_JOB
from zhiban.engine import JobRegistry

registry = JobRegistry()
registry.add(SYNC_JOB, sync)
