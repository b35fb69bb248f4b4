"""Job handlers of notify: `notify.deliver` sends one stored message; `notify.inbox_retention` prunes the inbox."""

from __future__ import annotations

from zhiban.engine import JobRegistry
from zhiban.notify import retention
from zhiban.notify.service import DELIVER_JOB, deliver

registry = JobRegistry()
registry.add(DELIVER_JOB, deliver, urgent=True)  # a page, or any message a person waits for
registry.add(retention.RETENTION_JOB, retention.run)
