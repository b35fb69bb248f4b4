"""Benchmark: who_is_on_call queries per second on a follow-the-sun schedule.

Three layers in Shanghai, Berlin and New York with office-hours and night restrictions, 50
overrides, random instants over one year. Target: at least 50,000 queries/s (warm cache).

    .venv/bin/python bench/bench_oncall.py [--queries 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from zhiban.oncall import DailyWindow, Layer, Override, Schedule, who_is_on_call

TARGET_QPS = 50_000
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)


def build_schedule(seed: int) -> Schedule:
    """APAC and EMEA office hours, AMER weekday nights in weekly turns, and 50 random overrides."""
    rng = random.Random(seed)
    office = DailyWindow(clock_time(9), clock_time(18), frozenset(range(5)))
    nights = DailyWindow(clock_time(18), clock_time(9), frozenset(range(5)))
    anchor = datetime(2025, 12, 29, 9)
    layers = (
        Layer(
            "apac",
            ("li", "wang", "zhang"),
            anchor.replace(tzinfo=ZoneInfo("Asia/Shanghai")),
            restrictions=(office,),
        ),
        Layer(
            "emea",
            ("eva", "max", "ola", "pim"),
            anchor.replace(tzinfo=ZoneInfo("Europe/Berlin")),
            restrictions=(office,),
            zone="Europe/Berlin",
        ),
        Layer(
            "amer",
            ("joe", "sue"),
            anchor.replace(tzinfo=ZoneInfo("America/New_York")),
            turn_length=7,
            restrictions=(nights,),
            zone="America/New_York",
        ),
    )
    overrides = []
    for number in range(50):
        start = YEAR_START + timedelta(minutes=rng.randrange(365 * 24 * 60))
        overrides.append(Override(f"stand-in-{number % 7}", start, start + timedelta(hours=rng.randint(1, 48))))
    return Schedule("bench", "Asia/Shanghai", layers, tuple(overrides), name="follow the sun")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(7)
    instants = [YEAR_START + timedelta(seconds=rng.randrange(365 * 86_400)) for _ in range(args.queries)]
    schedule = build_schedule(seed=11)

    cold_started = time.perf_counter()
    for moment in instants:
        who_is_on_call(schedule, moment)
    cold = time.perf_counter() - cold_started  # includes compiling every cache chunk of the year

    rates = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for moment in instants:
            who_is_on_call(schedule, moment)
        rates.append(len(instants) / (time.perf_counter() - started))

    covered = sum(1 for moment in instants[:10_000] if who_is_on_call(schedule, moment))
    median = statistics.median(rates)
    print("schedule: 3 layers (Asia/Shanghai, Europe/Berlin, America/New_York), restrictions, 50 overrides")
    print(f"queries per round: {len(instants):,} random instants in 2026; rounds: {args.rounds}")
    print(f"first pass (cold, compiles the year): {len(instants) / cold:,.0f} queries/s ({cold:.2f} s)")
    print(f"warm rounds: {', '.join(f'{rate:,.0f}' for rate in rates)} queries/s")
    print(f"median: {median:,.0f} queries/s; target {TARGET_QPS:,}; ratio {median / TARGET_QPS:.2f}x")
    print(f"sanity: {covered / 100:.1f} % of sampled instants have someone on call")


if __name__ == "__main__":
    main()
