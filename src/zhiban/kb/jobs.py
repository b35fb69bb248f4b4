"""Knowledge-base jobs: importing the demo corpus in the background, so the desk answers at once."""

from __future__ import annotations

from typing import Any

from zhiban.engine import JobContext, JobRegistry
from zhiban.store.db import transaction

registry = JobRegistry()
SEED_DEMO = "kb.seed_demo"


@registry.handler(SEED_DEMO)
def seed_demo_corpus(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Import ../shared/data/kb (idempotent: unchanged files make no new versions).

    The files are parsed and the tokenizer loaded before the transaction begins: on SQLite a write transaction
    holds the one write lock, and the desk's first minute (tickets, alerts, telemetry) must not wait on parsing."""
    from zhiban.kb.service import find_corpus, read_corpus, seed_kb
    from zhiban.kb.text import warm_up

    root = find_corpus()
    corpus = read_corpus(root) if root is not None else None
    warm_up()
    with transaction(ctx.session_factory) as session:
        seed_kb(session, ctx.clock, corpus)
        ctx.finish(session)
