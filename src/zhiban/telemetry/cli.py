"""`zhiban telemetry …` (and `zhiban simulate`): the RTC traffic simulator, the pipeline worker, pruning."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Call-quality telemetry: simulator, pipeline worker, retention.", no_args_is_help=True)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `1h`, `2d` → timedelta."""
    found = _DURATION.match(text.strip())
    if not found:
        raise typer.BadParameter(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h, 2d)")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def parse_moment(text: str) -> datetime:
    """An ISO 8601 moment with a zone (or Z)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text!r} needs a zone, e.g. 2026-11-21T19:00:00Z")
    return moment.astimezone(UTC)


def parse_fault(text: str, start: datetime) -> Any:
    """`kind:app:slice:start:duration[:magnitude]`; slice `dim=value,dim=value` (may be empty); start ISO or `+10m`."""
    from zhiban.telemetry.simulator_faults import Fault

    head = text.split(":", 3)
    if len(head) != 4:
        raise typer.BadParameter(f"fault {text!r}: use kind:app:slice:start:duration[:magnitude]")
    kind, app_id, slice_text, rest = head
    tail = rest.rsplit(":", 2)
    # The start may itself hold colons (ISO times): duration and magnitude are taken from the right.
    magnitude: float | None = None
    if len(tail) == 3 and _DURATION.match(tail[1].strip()):
        when, duration, magnitude_text = tail
        magnitude = float(magnitude_text) if magnitude_text.strip() else None
    else:
        when, _, duration = rest.rpartition(":")
    slice_ = {}
    for part in filter(None, (p.strip() for p in slice_text.split(","))):
        dim, sep, value = part.partition("=")
        if not sep:
            raise typer.BadParameter(f"fault slice {part!r}: use dim=value")
        slice_[dim.strip()] = value.strip()
    begins = start + parse_duration(when[1:]) if when.startswith("+") else parse_moment(when)
    return Fault(kind, app_id, begins, parse_duration(duration), slice_, magnitude)


def _fail(detail: str) -> None:
    typer.echo(f"error: {detail}", err=True)
    raise typer.Exit(2)


def simulate(
    out: Annotated[Path | None, typer.Option(help="write NDJSON.gz here (and <out>.truth.json)")] = None,
    url: Annotated[str | None, typer.Option(help="POST live to this ingest URL instead")] = None,
    key: Annotated[str | None, typer.Option(help="ingest key for --url")] = None,
    duration: Annotated[str, typer.Option(help="span to simulate, e.g. 1h (with --url: how long to run)")] = "1h",
    start: Annotated[str | None, typer.Option(help="event time of the start, ISO 8601 (default: now)")] = None,
    seed: Annotated[int, typer.Option(help="random seed: same seed and start, same reports")] = 0,
    fault: Annotated[
        list[str] | None, typer.Option(help="kind:app:slice:start:duration[:magnitude], repeatable")
    ] = None,
    peak_sessions: Annotated[int, typer.Option(help="concurrent sessions per app at its peak")] = 2000,
    app_id: Annotated[list[str] | None, typer.Option("--app", help="only these demo apps (repeatable)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
) -> None:
    """Generate RTC traffic of the demo apps: to a file (--out) or live to an ingest URL (--url --key)."""
    import orjson

    from zhiban.core.errors import ZhibanError
    from zhiban.telemetry.simulator import demo_apps

    if (out is None) == (url is None):
        _fail("give exactly one of --out FILE or --url URL")
    if url is not None and not key:
        _fail("--url needs --key (the app's ingest key)")
    try:
        span = parse_duration(duration)
        begins = parse_moment(start) if start else datetime.now(UTC).replace(microsecond=0)
        faults = [parse_fault(f, begins) for f in fault or []]
        apps = [a for a in demo_apps(peak_sessions=peak_sessions) if not app_id or a.app_id in app_id]
        if not apps:
            _fail("no such demo app; known: liveco, classmate, hiyo")
        if out is not None:
            from zhiban.telemetry.simulator import simulate_to_file

            summary = simulate_to_file(out, apps, faults, seed=seed, start=begins, duration=span, progress=progress)
            typer.echo(
                orjson.dumps(
                    {
                        "out": str(summary.path),
                        "truth": str(summary.truth_path),
                        "reports": summary.reports,
                        "ticks": summary.ticks,
                        "reports_per_s": round(summary.reports_per_s),
                    }
                ).decode()
            )
            return
        assert url is not None and key is not None
        _post_live(url, key, apps, faults, seed, begins, span)
    except ZhibanError as exc:
        _fail(exc.detail)


def _post_live(
    url: str, key: str, apps: list[Any], faults: list[Any], seed: int, begins: datetime, span: timedelta
) -> None:
    """Post each completed tick as it happens (event time follows the wall clock from `begins`)."""
    import time

    from zhiban.telemetry.simulator import HttpPoster, Simulator

    simulator = Simulator(apps, faults, seed=seed, start=begins)
    wall_start = time.monotonic()
    sent = 0
    with HttpPoster(url, key) as poster:
        while time.monotonic() - wall_start < span.total_seconds():
            now = begins + timedelta(seconds=time.monotonic() - wall_start)
            batch = simulator.advance_to(now)
            if batch:
                sent += poster.post(batch)
                typer.echo(f"{simulator.cursor.isoformat()}  sent {sent:,} reports", err=True)
            time.sleep(1.0)


app.command("simulate")(simulate)


@app.command("pipeline")
def pipeline(
    partitions: Annotated[str | None, typer.Option(help="partitions to own, e.g. 0,1,2 (default: all)")] = None,
) -> None:
    """Consume the telemetry bus (scale-out worker): aggregate, persist windows, roll up, prune."""
    import threading

    from zhiban.core.logging import configure
    from zhiban.desk import from_environment as _desk
    from zhiban.engine import install_signal_handlers
    from zhiban.telemetry.live import TelemetrySettings, runtime_for

    desk = _desk()
    configure(desk.settings.log_level)
    settings = TelemetrySettings()
    if partitions:
        settings = settings.model_copy(update={"owned_partitions": partitions, "consume": True})
    runtime = runtime_for(desk, settings=settings)
    stop = threading.Event()
    install_signal_handlers(stop)
    typer.echo(f"telemetry pipeline on partitions {settings.owned()} of {settings.partitions}; Ctrl-C to stop")
    runtime.start(stop)
    assert runtime.thread is not None
    while runtime.thread.is_alive():
        runtime.thread.join(timeout=1.0)


@app.command("prune")
def prune() -> None:
    """Delete windows and raw reports past their retention now (the pipeline also does it every 10 min)."""
    import orjson

    from zhiban.desk import from_environment as _desk
    from zhiban.telemetry import service

    desk = _desk()
    with desk.transaction() as session:
        deleted = service.prune(session, desk.clock.now())
    typer.echo(orjson.dumps(deleted).decode())


# Mounted at the top level by zhiban.cli: `zhiban simulate` is the README's command.
root_commands = {"simulate": simulate}
