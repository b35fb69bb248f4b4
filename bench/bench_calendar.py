"""Benchmark: business-time arithmetic on the China calendar, and recomputing SLA clocks of open tickets.

Run: .venv/bin/python bench/bench_calendar.py [--repeats N]
Targets: >= 200,000 add_business_time calls/s on one core; < 10 s for 100,000 open tickets.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from zhiban.calendars import country_calendar
from zhiban.sla import (
    PLANS,
    AgentReply,
    CustomerMessage,
    Priority,
    Status,
    StatusChanged,
    TicketCreated,
    TicketEvent,
    calendar_resolver,
    compute_clocks,
)

ADD_TARGET_PER_S = 200_000
TICKETS_TARGET_S = 10.0
CALLS = 200_000
TICKETS = 100_000


def bench_add(repeats: int) -> float:
    """Median add_business_time calls per second: random starts over 2026, business durations up to 30 days."""
    cal = country_calendar("CN", "Asia/Shanghai")
    rnd = random.Random(7)
    year = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [year + timedelta(seconds=rnd.randrange(365 * 86_400)) for _ in range(CALLS)]
    durations = [timedelta(seconds=rnd.randrange(1, 30 * 86_400)) for _ in range(CALLS)]
    add = cal.add_business_time
    add(starts[0], durations[0])  # build the cached arrays outside the timing
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for start, duration in zip(starts, durations, strict=True):
            add(start, duration)
        rates.append(CALLS / (time.perf_counter() - t0))
    return statistics.median(rates)


def synthetic_tickets(n: int) -> list[list[TicketEvent]]:
    """Open tickets with 1-5 events: creation, replies, customer messages, a pending spell."""
    rnd = random.Random(11)
    plans = list(PLANS)
    base = datetime(2026, 9, 1, tzinfo=UTC)
    logs: list[list[TicketEvent]] = []
    for _ in range(n):
        at = base + timedelta(seconds=rnd.randrange(60 * 86_400))
        log: list[TicketEvent] = [TicketCreated(at, rnd.choice(list(Priority)), rnd.choice(plans))]
        for _ in range(rnd.randrange(5)):
            at += timedelta(minutes=rnd.randrange(1, 600))
            kind = rnd.randrange(4)
            if kind == 0:
                log.append(AgentReply(at))
            elif kind == 1:
                log.append(CustomerMessage(at))
            elif kind == 2:
                log.append(StatusChanged(at, Status.PENDING))
            else:
                log.append(StatusChanged(at, Status.OPEN))
        logs.append(log)
    return logs


def bench_tickets(repeats: int) -> float:
    """Median seconds to recompute the clocks of TICKETS open tickets."""
    resolve = calendar_resolver("CN", "Asia/Shanghai")
    logs = synthetic_tickets(TICKETS)
    now = datetime(2026, 11, 15, tzinfo=UTC)
    compute_clocks(logs[0], resolve, now)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for log in logs:
            compute_clocks(log, resolve, now)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rate = bench_add(args.repeats)
    print(f"add_business_time (CN, {CALLS:,} calls x {args.repeats}): median {rate:,.0f} calls/s")
    print(f"  target {ADD_TARGET_PER_S:,}/s -> ratio {rate / ADD_TARGET_PER_S:.2f}x")
    seconds = bench_tickets(max(1, min(args.repeats, 3)))
    print(f"compute_clocks for {TICKETS:,} open tickets: median {seconds:.2f} s ({TICKETS / seconds:,.0f} tickets/s)")
    print(
        f"  target < {TICKETS_TARGET_S:.0f} s -> ratio {TICKETS_TARGET_S / seconds:.2f}x (above 1 = faster than target)"
    )


if __name__ == "__main__":
    main()
