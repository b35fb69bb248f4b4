"""Knowledge-base jobs: importing the shipped demo articles in the background, so the desk answers at once."""

from __future__ import annotations

from typing import Any

from zhiban.engine import JobContext, JobRegistry
from zhiban.store.db import transaction

registry = JobRegistry()
SEED_DEMO = "kb.seed_demo"


@registry.handler(SEED_DEMO)
def seed_demo_corpus(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Import the demo articles that ship with zhiban (idempotent: unchanged files make no new versions).

    Other folders (such as the evaluation corpus ../shared/data/kb) are imported on purpose, with
    `zhiban kb import PATH`, never by the demo.

    The files are parsed and the tokenizer loaded before the transaction begins: on SQLite a write transaction
    holds the one write lock, and the desk's first minute (tickets, alerts, telemetry) must not wait on parsing."""
    from zhiban.kb.service import demo_corpus, read_corpus, seed_kb
    from zhiban.kb.text import warm_up

    corpus = read_corpus(demo_corpus())
    warm_up()
    with transaction(ctx.session_factory) as session:
        seed_kb(session, ctx.clock, corpus)
        ctx.finish(session)
