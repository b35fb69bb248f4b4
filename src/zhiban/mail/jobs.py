"""Job handlers of ticket mail."""

from __future__ import annotations

from typing import Any

from zhiban.core.errors import InvalidInput
from zhiban.core.settings import get_settings
from zhiban.engine import JobContext, JobRegistry, PermanentFailure
from zhiban.mail.service import SEND_JOB, send_queued

registry = JobRegistry()


@registry.handler(SEND_JOB)
def send_mail(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Send one queued outbound mail (payload: {"mail_id": int}); safe to run more than once."""
    mail_id = payload.get("mail_id")
    if not isinstance(mail_id, int) or isinstance(mail_id, bool):
        raise PermanentFailure(InvalidInput("mail.send needs an integer mail_id").detail)
    send_queued(ctx, mail_id, get_settings())
