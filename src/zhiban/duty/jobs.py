"""On-duty jobs: `duty.tell_team`, left in the queue by desks that told a team from a job (routing tells it now)."""

from __future__ import annotations

from typing import Any

from zhiban.duty import notices
from zhiban.engine import JobContext, JobRegistry, PermanentFailure
from zhiban.store.db import transaction

registry = JobRegistry()


@registry.handler(notices.TELL_TEAM_JOB)
def tell_team(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        ticket_id = int(payload["ticket_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"bad payload {payload!r}") from exc
    with transaction(ctx.session_factory) as session:
        notices.tell_team(session, ctx.clock, ticket_id)
        ctx.finish(session)
