"""The `zhiban` command."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from zhiban.core.console import console as cli_console
from zhiban.core.errors import ZhibanError
from zhiban.core.heap import settle_heap
from zhiban.core.settings import Settings, get_settings
from zhiban.desk import Desk

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="值班 zhiban — the 7x24 support and incident desk for RTC vendors.", no_args_is_help=True)
user_app = typer.Typer(help="People: agents, admins and customer users.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
jobs_app = typer.Typer(help="Durable jobs and timers: list, retry the dead-lettered.", invoke_without_command=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(jobs_app, name="jobs")


_mounted = False


def _mount_feature_commands() -> None:
    """`zhiban <feature> …` for every feature with a cli module exposing a Typer `app` (once per process)."""
    global _mounted
    if _mounted:
        return
    _mounted = True
    from zhiban.features import feature_modules

    for module in feature_modules("cli"):
        feature = module.__name__.split(".")[1]
        app.add_typer(module.app, name=feature)
        # A feature may also offer top-level commands and groups (e.g. `zhiban ack`, `zhiban simulate`); a group
        # that is the feature's own under another name says so, rather than repeat its help in the list.
        for name, group in getattr(module, "root_groups", {}).items():
            alias = f"The same as `zhiban {feature}`." if group is module.app else None
            app.add_typer(group, name=name, short_help=alias)
        for name, command in getattr(module, "root_commands", {}).items():
            app.command(name)(command)
    # `zhiban oncall who --plan`: on-call may not import duty (duty -> incidents -> oncall), so it is told here.
    from zhiban.oncall.cli import plans_with

    plans_with(_on_duty_for_plan)


def _on_duty_for_plan(session: Session, plan: str, at: datetime) -> Any:
    # Imported when asked: duty pulls in incidents, SLA and notify, which no other command's start needs.
    from zhiban.duty.who import on_duty_for_plan

    return on_duty_for_plan(session, plan, at)


def command() -> typer.Typer:
    """The whole `zhiban` command, every feature's commands mounted: what `main` runs, and tests invoke in-process."""
    _mount_feature_commands()
    return app


console = cli_console()
err = cli_console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(fn: F) -> F:
    """Turn a domain error into one clear line on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ZhibanError as exc:
            err.print(f"[red]error:[/red] {exc.detail}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _desk(settings: Settings | None = None) -> Desk:
    return Desk(settings=settings or get_settings())


def _migrate(desk: Desk) -> None:
    from zhiban.store.migrate import upgrade

    upgrade(desk.db)


@app.command()
@clean_errors
def migrate() -> None:
    """Create or upgrade the database schema (ZHIBAN_DATABASE_URL)."""
    desk = _desk()
    _migrate(desk)
    console.print(f"schema up to date on {desk.db.url.render_as_string(hide_password=True)}")


def _print_logins(logins: list[Any]) -> None:
    from zhiban.demo.seed import DEMO_PASSWORD

    table = Table(title=f"Demo logins (password: {DEMO_PASSWORD})")
    for col in ("e-mail", "role", "organization"):
        table.add_column(col)
    for login in logins:
        table.add_row(login.email, login.role, login.organization)
    console.print(table)


@app.command()
@clean_errors
def demo() -> None:
    """Seed the demo data into the configured database and exit."""
    from zhiban.demo.seed import seed_demo_world

    desk = _desk()
    _migrate(desk)
    with desk.transaction() as session:
        logins = seed_demo_world(session, desk.clock)
    if logins:
        _print_logins(logins)
    else:
        console.print("demo data already present")


def _start_worker(desk: Desk, stop: threading.Event) -> threading.Thread:
    from zhiban.engine import Worker
    from zhiban.handlers import desk_registry

    worker = Worker(
        desk.sessions,
        desk_registry(),
        desk.clock,
        concurrency=desk.settings.worker_concurrency,
        lease=timedelta(seconds=desk.settings.job_lease_seconds),
    )
    thread = threading.Thread(target=worker.run_forever, args=(stop,), name="zhiban-worker", daemon=True)
    thread.start()
    return thread


WEB_PROCS = typer.Option(
    "--web-procs", min=1, max=64, help="web processes on the one port, e.g. one per core (ZHIBAN_WEB_PROCESSES)"
)


def _with_web_processes(settings: Settings, web_procs: int | None) -> Settings:
    return settings if web_procs is None else settings.model_copy(update={"web_processes": web_procs})


def _run_web(web_app: Any, host: str, port: int, processes: int, banner: str) -> None:
    """Serve the app on host:port; with several processes, this one binds the port and starts the others.
    The banner is printed once the port answers (loading the app takes seconds)."""
    import uvicorn

    from zhiban.web.processes import AnnouncedServer, Siblings, listen, serve

    if processes <= 1:
        config = uvicorn.Config(web_app, host=host, port=port, log_config=None, access_log=False)
        AnnouncedServer(config, lambda: console.print(banner)).run()
        return
    listener = listen(host, port)
    siblings = Siblings(listener, processes - 1, env={**os.environ, "ZHIBAN_WEB_PROCESSES": str(processes)})
    siblings.start()
    try:
        serve(web_app, listener, lambda: console.print(f"{banner}  ({processes} web processes)"))
    finally:
        siblings.stop()


@app.command()
@clean_errors
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (ZHIBAN_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind (ZHIBAN_PORT)")] = None,
    demo: Annotated[bool | None, typer.Option("--demo/--no-demo", help="seed demo data on a first start")] = None,
    web_procs: Annotated[int | None, WEB_PROCS] = None,
) -> None:
    """Run the whole desk in one process: web, API, worker (SQLite by default); --web-procs adds web processes."""
    from zhiban.core.logging import configure
    from zhiban.demo.seed import seed_demo_world
    from zhiban.web.app import create_app

    settings = _with_web_processes(get_settings(), web_procs)
    configure(settings.log_level)
    desk = _desk(settings)
    _migrate(desk)
    if settings.demo if demo is None else demo:
        with desk.transaction() as session:
            logins = seed_demo_world(session, desk.clock)
        if logins:
            _print_logins(logins)
    from zhiban.mail.inbound import start_inbound
    from zhiban.telemetry.live import start_live_simulation, start_telemetry

    stop = threading.Event()
    telemetry = start_telemetry(desk, stop)
    if settings.simulate:
        start_live_simulation(desk, stop)  # the demo's apps send traffic, so dashboards are alive at once
    worker_thread = _start_worker(desk, stop)
    inbound = start_inbound(desk)  # ZHIBAN_INBOUND_SMTP_PORT=0 (the default) keeps it off
    # uvicorn re-raises SIGTERM once it has stopped; turn it into SystemExit so the clean-up below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bind_host, bind_port = host or settings.host, port or settings.port
    from zhiban.drills.service import configure as configure_drills

    # This process's worker files drills' tickets through this process's API, wherever the public URL points.
    local = "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
    configure_drills(api_url=f"http://[{local}]:{bind_port}" if ":" in local else f"http://{local}:{bind_port}")
    web_app = create_app(desk)
    settle_heap()
    try:
        banner = f"zhiban is on duty at http://{bind_host}:{bind_port}  (API docs: /docs)"
        _run_web(web_app, bind_host, bind_port, settings.web_processes, banner)
    finally:
        # Let running jobs finish or be released now, rather than waiting for their leases to expire.
        stop.set()
        inbound.stop()
        if telemetry.thread:
            telemetry.thread.join(timeout=30)  # the pipeline saves its open windows
        worker_thread.join(timeout=30)


@app.command()
@clean_errors
def worker(
    concurrency: Annotated[int | None, typer.Option(help="jobs run at once (ZHIBAN_WORKER_CONCURRENCY)")] = None,
) -> None:
    """Run a job worker alone (scale-out: several on PostgreSQL)."""
    from zhiban.core.logging import configure
    from zhiban.engine import Worker, install_signal_handlers
    from zhiban.handlers import desk_registry

    settings = get_settings()
    configure(settings.log_level)
    desk = _desk(settings)
    stop = threading.Event()
    w = Worker(
        desk.sessions,
        desk_registry(),
        desk.clock,
        concurrency=concurrency or settings.worker_concurrency,
        lease=timedelta(seconds=settings.job_lease_seconds),
    )
    install_signal_handlers(stop, w)  # SIGTERM wakes the worker at once, not at its next poll
    settle_heap()
    console.print(f"worker {w.worker_id} running; Ctrl-C to stop")
    w.run_forever(stop)


@app.command()
@clean_errors
def web(
    host: Annotated[str | None, typer.Option(help="address to bind (ZHIBAN_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind (ZHIBAN_PORT)")] = None,
    web_procs: Annotated[int | None, WEB_PROCS] = None,
) -> None:
    """Run the web app and API without a job worker (scale-out: beside `zhiban worker`; `zhiban migrate` first)."""
    from zhiban.core.logging import configure
    from zhiban.telemetry.live import start_telemetry
    from zhiban.web.app import create_app
    from zhiban.web.processes import follow_parent, inherited_listener

    settings = _with_web_processes(get_settings(), web_procs)
    configure(settings.log_level)
    desk = _desk(settings)
    stop = threading.Event()
    telemetry = start_telemetry(desk, stop)  # telemetry ingest needs its pipeline in the process that takes it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bind_host, bind_port = host or settings.host, port or settings.port
    web_app = create_app(desk)
    settle_heap()
    try:
        inherited = inherited_listener(os.environ)
        if inherited is not None:  # a sibling of a first process that holds the port
            follow_parent(os.environ)
            from zhiban.web.processes import serve as serve_on

            serve_on(web_app, inherited)
            return
        banner = f"zhiban web at http://{bind_host}:{bind_port}; jobs run in `zhiban worker` processes"
        _run_web(web_app, bind_host, bind_port, settings.web_processes, banner)
    finally:
        stop.set()
        if telemetry.thread:
            telemetry.thread.join(timeout=30)


@user_app.command("create")
@clean_errors
def user_create(
    email: Annotated[str, typer.Option(help="e-mail (login)")],
    name: Annotated[str, typer.Option(help="display name")],
    role: Annotated[str, typer.Option(help="admin, agent or customer")] = "agent",
    org: Annotated[str | None, typer.Option(help="organization slug (customer users)")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "UTC",
    language: Annotated[str, typer.Option(help="zh or en")] = "en",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Add a person who can sign in."""
    from zhiban.identity import service

    desk = _desk()
    with desk.transaction() as session:
        org_id = None
        if org:
            found = service.organization_with_slug(session, org)
            if found is None:
                raise ZhibanError(f"no organization with slug {org!r}")
            org_id = found.id
        person = service.create_person(
            session,
            desk.clock,
            email=email,
            name=name,
            role=role,
            organization_id=org_id,
            password=password,
            timezone=timezone,
            language=language,
        )
        console.print(f"created {person.role} {person.email} ({person.id})")


@token_app.command("create")
@clean_errors
def token_create(
    email: Annotated[str, typer.Option(help="whose token")],
    name: Annotated[str, typer.Option(help="what the token is for")] = "cli",
    scope: Annotated[list[str] | None, typer.Option(help="repeat for several scopes; none: all but admin")] = None,
) -> None:
    """Mint an API token; it is printed once."""
    from zhiban.identity import service
    from zhiban.identity.model import DEFAULT_SCOPES

    desk = _desk()
    with desk.transaction() as session:
        person = service.person_with_email(session, email)
        if person is None:
            raise ZhibanError(f"nobody has the e-mail {email}")
        issued = service.create_token(
            session, desk.clock, person_id=person.id, name=name, scopes=tuple(scope or DEFAULT_SCOPES)
        )
    console.print(issued.plain, highlight=False, soft_wrap=True)


@jobs_app.callback()
@clean_errors
def jobs(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="pending, running, done or dead")] = None,
    limit: Annotated[int, typer.Option(help="rows to show")] = 50,
) -> None:
    """List jobs (the dead-lettered first if no state is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from zhiban.engine import job_counts, list_jobs

    desk = _desk()
    with desk.transaction() as session:
        counts = job_counts(session)
        rows = list_jobs(session, state=state, limit=limit)
    console.print("  ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no jobs")
    table = Table()
    for col in ("id", "kind", "state", "attempts", "due", "last error"):
        table.add_column(col)
    for job in rows:
        table.add_row(
            job.id,
            job.kind,
            job.state,
            f"{job.attempts}/{job.max_attempts}",
            job.due_at.isoformat(timespec="seconds"),
            (job.last_error or "")[:80],
        )
    console.print(table)


@jobs_app.command("retry")
@clean_errors
def jobs_retry(job_id: Annotated[str, typer.Argument(help="id of a dead job")]) -> None:
    """Put a dead-lettered job back in the queue, due now."""
    from zhiban.engine import retry_job

    desk = _desk()
    with desk.transaction() as session:
        retry_job(session, job_id, due_at=desk.clock.now())
    console.print(f"job {job_id} queued again")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        command()()
    except KeyboardInterrupt:
        sys.exit(130)
    except ZhibanError as exc:  # e.g. a desk refusing its settings (a test clock) in any command
        err.print(f"[red]error:[/red] {exc.detail}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        from zhiban.store.db import missing_table

        table = missing_table(exc)
        if table is None:
            raise
        url = get_settings().database_url.split("@")[-1]  # no password in the message
        err.print(
            f"[red]error:[/red] the database ({url}) has no table {table!r}: it was never migrated, or by an older"
            " release; run `zhiban migrate`",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
