"""Run a worker process: `python -m zhiban.engine --database-url URL --handlers some.module`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta

from zhiban.core.clock import clock_from
from zhiban.core.errors import ZhibanError
from zhiban.core.settings import get_settings
from zhiban.store.db import make_engine, session_factory

from .registry import JobRegistry
from .worker import Worker, install_signal_handlers


def load_registry(modules: Sequence[str]) -> JobRegistry:
    """Import each module and merge the `registry` (a JobRegistry) it exposes."""
    merged = JobRegistry()
    for name in modules:
        module = importlib.import_module(name)
        found = getattr(module, "registry", None)
        if not isinstance(found, JobRegistry):
            raise SystemExit(f"module {name} has no `registry` JobRegistry")
        merged.include(found)
    return merged


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m zhiban.engine", description="Run a zhiban job worker.")
    parser.add_argument("--database-url", required=True, help="SQLAlchemy URL of the database")
    parser.add_argument("--handlers", action="append", required=True, help="module exposing `registry` (repeatable)")
    parser.add_argument("--worker-id", default=None, help="name of this worker in the jobs table")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs run at once")
    parser.add_argument("--lease", type=float, default=60.0, help="lease seconds of a claimed job")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls for due jobs")
    parser.add_argument("--retry-base", type=float, default=5.0, help="first retry waits up to this many seconds")
    parser.add_argument("--retry-cap", type=float, default=600.0, help="no retry waits longer than this")
    parser.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds running jobs get on SIGTERM")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker until SIGTERM or SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    registry = load_registry(args.handlers)
    settings = get_settings()  # the desk's test clock, if its environment names one, as `zhiban worker` has it
    try:
        clock = clock_from(settings.clock_start, settings.clock_anchor, allowed=settings.allow_test_clock)
    except ZhibanError as exc:
        raise SystemExit(f"error: {exc.detail}") from None
    engine = make_engine(args.database_url)
    worker = Worker(
        session_factory(engine),
        registry,
        clock,
        args.worker_id,
        concurrency=args.concurrency,
        lease=timedelta(seconds=args.lease),
        poll=timedelta(seconds=args.poll),
        retry_base=timedelta(seconds=args.retry_base),
        retry_cap=timedelta(seconds=args.retry_cap),
        shutdown_grace=timedelta(seconds=args.shutdown_grace),
    )
    stop = threading.Event()
    install_signal_handlers(stop, worker)
    try:
        worker.run_forever(stop)
    finally:
        engine.dispose()
    return 0
