"""What a shared transaction saves per ticket: the ticket intake's batch against one ticket per transaction.

    uv run --frozen python bench/bench_ticket_intake.py [--db postgres|sqlite] [--tickets 320] [--batch 16]

In one process, no HTTP: the bench's world (bench_tickets.setup_desk: eight organizations on four plans, paging on
for Premium and Enterprise) on a fresh database; callers resolved apart, as the API resolves them before it hands a
filing to the intake. Printed for P3 tickets (no page) and P1 tickets (a page where the plan and hour say so): CPU
milliseconds of this process and SQL statements per ticket, filed one per transaction (`tickets.service.create_ticket`
as a request would) and in the intake's batches (`tickets.intake.TicketIntake`'s batch function), and the ratio.
CPU time, not rates: the machine is shared; the figures are medians of three rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_alerts import fresh_db
from bench_tickets import setup_desk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--tickets", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="zhiban-intake-"))
    db_url, drop = fresh_db(args.db, workdir)
    env = dict(
        os.environ,
        ZHIBAN_DATABASE_URL=db_url,
        ZHIBAN_VAR_DIR=str(workdir),
        ZHIBAN_SECRET_KEY="bench-secret-key-bench-secret-key",
        ZHIBAN_DEMO="false",
        ZHIBAN_SIMULATE="false",
        ZHIBAN_SMTP_URL="",
        ZHIBAN_LOG_LEVEL="WARNING",
    )
    os.environ.update(env)
    try:
        run(setup_desk(db_url, env), args.tickets, args.batch)
    finally:
        if drop is not None:
            drop()


def run(customers: list[tuple[str, str]], count: int, batch: int) -> None:
    from sqlalchemy import event

    from zhiban.desk import from_environment
    from zhiban.identity import service as identity
    from zhiban.tickets import service
    from zhiban.tickets.intake import Filing, TicketIntake
    from zhiban.tickets.model import Channel
    from zhiban.web.app import create_app

    desk = from_environment()
    create_app(desk)  # every feature's hooks, as in the web process
    with desk.transaction() as s:
        principals = [identity.resolve_token(s, desk.clock, token) for token, _ in customers]
    statements = [0]
    event.listen(desk.db, "before_cursor_execute", lambda *_: statements.__setitem__(0, statements[0] + 1))
    intake: TicketIntake[int] = TicketIntake(desk.sessions, desk.clock, lambda ticket, _: ticket.id)

    def filing(i: int, priority: str) -> Filing:
        return Filing(principals[i % len(principals)], f"Video freezes #{i}", "Viewers see frozen video.", priority,
                      Channel.API)  # fmt: skip

    def one_each(priority: str) -> None:
        for i in range(count):
            f = filing(i, priority)
            with desk.transaction() as s:
                ticket = service.create_ticket(s, desk.clock, f.principal, subject=f.subject, body=f.body,
                                               priority=f.priority, channel=f.channel)  # fmt: skip
                service.on_duty_of_filed(s, ticket.id)

    def batched(priority: str) -> None:
        for start in range(0, count, batch):
            with desk.transaction() as s:
                intake._apply_batch(s, [filing(i, priority) for i in range(start, min(count, start + batch))])

    def measure(way: Callable[[str], None], priority: str) -> tuple[float, float]:
        rounds = []
        for _ in range(3):
            statements[0] = 0
            started = time.process_time()
            way(priority)
            rounds.append((1000 * (time.process_time() - started) / count, statements[0] / count))
        return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)

    one_each("P3")  # warm: caches, the organizations' calendars
    print(f"{desk.db.dialect.name}: {count} tickets per round, batches of {batch}, median of 3 rounds")
    for priority in ("P3", "P1"):
        alone_ms, alone_sql = measure(one_each, priority)
        shared_ms, shared_sql = measure(batched, priority)
        print(
            f"  {priority}: one per transaction {alone_ms:.2f} ms CPU, {alone_sql:.1f} statements per ticket; "
            f"intake {shared_ms:.2f} ms, {shared_sql:.1f} statements; CPU ratio {shared_ms / alone_ms:.2f}"
        )


if __name__ == "__main__":
    main()
