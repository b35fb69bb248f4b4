"""Ticket mail is sent by notify's delivery job; this registry includes it, and the outbound rows follow it."""

from __future__ import annotations

from zhiban.engine import JobRegistry
from zhiban.mail.service import record_result
from zhiban.notify import jobs as notify_jobs
from zhiban.notify import service as notify

registry = JobRegistry()
registry.include(notify_jobs.registry)
notify.on_result(record_result)
