"""Ticket jobs: committed changes handed to the features that follow them (see tickets.events.follow), and the
daily sweep of attachment blobs no attachment names (tickets.attachments)."""

from __future__ import annotations

from typing import Any

from zhiban.engine import JobContext, JobRegistry, PermanentFailure
from zhiban.store.db import transaction
from zhiban.tickets import attachments, events, service
from zhiban.tickets.events import FOLLOW_JOB

registry = JobRegistry()
registry.add(attachments.SWEEP_JOB, attachments.run_sweep)
FOLLOW_BATCH = 500  # changes per worker transaction in a rush: one read of the log, one call per follower


@registry.batch_handler(FOLLOW_JOB, max_batch=FOLLOW_BATCH)
def hand_to_followers(ctx: JobContext, payloads: list[dict[str, Any]]) -> None:
    """Read the changes back from the log and deliver them to every follower, in one transaction."""
    try:
        seqs = [int(p["seq"]) for p in payloads]
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"bad {FOLLOW_JOB} payload") from exc
    with transaction(ctx.session_factory) as session:
        # A change whose ticket was deleted meanwhile is gone from the log: nobody needs to hear it.
        events.deliver(session, ctx.clock, service.changes(session, seqs))
        ctx.finish(session)
