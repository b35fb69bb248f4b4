"""Job handlers of notify: `notify.deliver` sends one stored message."""

from __future__ import annotations

from zhiban.engine import JobRegistry
from zhiban.notify.service import DELIVER_JOB, deliver

registry = JobRegistry()
registry.add(DELIVER_JOB, deliver, urgent=True)  # a page, or any message a person waits for
