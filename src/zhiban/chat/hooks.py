"""Chat groups hear agents' public replies (to mirror them into the thread) and how notify delivered them."""

from __future__ import annotations

from zhiban.chat import service
from zhiban.notify import service as notify
from zhiban.tickets import events

events.subscribe(service.on_ticket_change)
notify.on_result(service.record_result)
