"""Knowledge-base jobs: importing the demo corpus in the background, so the desk answers at once."""

from __future__ import annotations

from typing import Any

from zhiban.engine import JobContext, JobRegistry
from zhiban.store.db import transaction

registry = JobRegistry()
SEED_DEMO = "kb.seed_demo"


@registry.handler(SEED_DEMO)
def seed_demo_corpus(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Import ../shared/data/kb (idempotent: unchanged files make no new versions)."""
    from zhiban.kb.service import seed_kb

    with transaction(ctx.session_factory) as session:
        seed_kb(session, ctx.clock)
        ctx.finish(session)
