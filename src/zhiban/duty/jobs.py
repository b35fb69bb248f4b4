"""On-duty jobs: a new ticket's team hears of it once the ticket (and its triage) is committed."""

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
        attempt = int(payload.get("attempt", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"bad payload {payload!r}") from exc
    with transaction(ctx.session_factory) as session:
        notices.tell_team(session, ctx.clock, ticket_id, attempt)
        ctx.finish(session)
