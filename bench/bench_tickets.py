"""Ticket rush: customers of several organizations file tickets through the API as fast as the desk answers.

    uv run --frozen --with aiohttp python bench/bench_tickets.py [--db sqlite|postgres|both] [--tickets 20000]
                                   [--layout split|serve] [--web-procs 1] [--tree PATH] [--quiet-timeout 120]

The desk is started as a user deploys it: `zhiban migrate`, then `zhiban web` + `zhiban worker` (layout
`split`, the default) or `zhiban serve` (layout `serve`), with `--web-procs N` web processes on the one port (the web
process's CPU is then that of all N), on a fresh SQLite file or a fresh PostgreSQL
schema (127.0.0.1:5432, db `test`, dropped afterwards). Customers of eight organizations (two per plan) get
API tokens; 200 tickets warm the desk up, then a closed loop of 16 aiohttp connections files `--tickets`
tickets with mixed priorities (each connection sends its next ticket when the last one is answered).

Printed per database: rate, p50/p99 latency, CPU seconds per ticket of each process (and PostgreSQL's own
backends), how long after the load the worker went idle (no due job and < 5 % of a core for a second), and
the counts that prove nothing was lost: tickets filed = tickets answered 201, each with its SLA context,
a first-response clock that started at the ticket's creation time, and a triage result. The ratio is to
django-helpdesk's REST create figures as quoted in issues 13 and 21 (not re-measured here). Before each
figure the bench waits (up to --quiet-timeout s) for a load average below 1, and prints the load it ran at.
--tree runs another checkout's src (e.g. an export of main) with this bench, for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_alerts import (
    ROOT,
    cpu_seconds,
    free_port,
    fresh_db,
    percentile,
    postgres_cpu_seconds,
    wait_ready,
)

CONNECTIONS = 16
WARM_UP = 200
# django-helpdesk 2.6.1's REST create on this machine, as quoted in the issues (tickets/s, p99 ms).
HELPDESK_QUOTED = {
    "sqlite": [("issue 13", 128.0, None), ("issue 21", 134.0, 228.0)],
    "postgres": [("issue 13", 54.0, None), ("issue 21", 77.0, 253.0)],
}
PLANS = ("basic", "standard", "premium", "enterprise")
PRIORITIES = ("P1",) * 1 + ("P2",) * 3 + ("P3",) * 4 + ("P4",) * 2
PROBLEMS = [
    ("Video freezes in live rooms", "Viewers in cn-east see frozen video every few seconds since 20:00, room 8812."),
    ("直播间卡顿", "华东移动用户观看直播卡顿严重，频道 room-8812，从晚上八点开始。"),
    ("Token expired error 109", "renewToken does not help, the SDK keeps reporting error 109 after an hour."),
    ("Echo during calls", "Patients on iPad hear their own voice back since Tuesday's SDK update."),
    ("推流黑屏", "Windows 老师端开始上课后学生看到黑屏，SDK 4.3.2。"),
    ("Cannot join channel", "Joining fails with a timeout for users behind a corporate firewall."),
    ("Invoice question", "Our November invoice shows more minutes than our dashboard."),
    ("Cloud recording missing", "Recordings of yesterday's classes never arrived in our bucket."),
]


def quiet_machine(timeout: float) -> float:
    """Wait until the 1-minute load average is below 1 (at most `timeout` s); return the load then."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] >= 1 and time.monotonic() < deadline:
        time.sleep(2)
    load = os.getloadavg()[0]
    print(f"  load average {load:.2f}" + (" (did not fall below 1 in time)" if load >= 1 else ""), flush=True)
    return load


# --- the desk -------------------------------------------------------------------------------------


def setup_desk(db_url: str, env: dict[str, str], *, paging: bool = True) -> list[tuple[str, str]]:
    """Schema by `zhiban migrate`; then plans, teams, organizations and their customers' tokens, as an admin
    would make them. Returns (token, organization id) per customer."""
    subprocess.run([_zhiban(), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    import zhiban.store.models  # noqa: F401
    from zhiban.core.clock import SystemClock
    from zhiban.identity import service as identity
    from zhiban.identity.model import Role
    from zhiban.sla.service import ensure_plans
    from zhiban.store.db import make_engine, session_factory, transaction

    engine = make_engine(db_url)
    clock = SystemClock()
    customers = []
    with transaction(session_factory(engine)) as s:
        ensure_plans(s, clock)
        lead = identity.create_person(s, clock, email="lead@vendor.test", name="Duty manager", role=Role.ADMIN)
        for name, domain in (("Network", "network"), ("Video & Audio", "video"), ("SDK", "sdk_integration")):
            team = identity.create_team(s, name=name, domain=domain, lead_id=lead.id)
            identity.add_team_member(s, team.id, lead.id)
        if paging:
            # On duty as a vendor runs it: Premium and Enterprise tickets page the duty manager (mail; no SMTP
            # server here, so the mail is logged and the message counts as sent) through "P1 tickets".
            from zhiban.incidents import service as incidents
            from zhiban.sla.service import save_plan

            policy = incidents.create_policy(
                s,
                clock,
                name="tickets",
                levels=[{"delay_minutes": 10, "targets": [{"kind": "person", "ref": lead.id}]}],
            )
            service = incidents.create_service(s, clock, name="P1 tickets", policy=policy.id, urgency_rule="high")
            save_plan(s, clock, "premium", support={"mode": "dedicated", "paging_service_id": service.id})
            save_plan(s, clock, "enterprise", support={"mode": "standby", "paging_service_id": service.id})
        for i in range(8):
            plan = PLANS[i % len(PLANS)]
            org = identity.create_organization(
                s, clock, name=f"Customer {i} ({plan})", slug=f"customer-{i}", plan=plan, timezone="Asia/Shanghai"
            )
            for j in range(2):
                person = identity.create_person(
                    s, clock, email=f"dev{j}@customer-{i}.test", name=f"dev {j}", role=Role.CUSTOMER,
                    organization_id=org.id,
                )  # fmt: skip
                token = identity.create_token(s, clock, person_id=person.id, name="bench", scopes=("tickets:write",))
                customers.append((token.plain, org.id))
    engine.dispose()
    return customers


def _zhiban() -> str:
    return (
        str(Path(sys.executable).parent / "zhiban") if (Path(sys.executable).parent / "zhiban").exists() else "zhiban"
    )


def start_desk(
    layout: str, env: dict[str, str], port: int, log: Path, web_procs: int = 1
) -> dict[str, subprocess.Popen[bytes]]:
    def start(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([_zhiban(), *args], env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))

    procs = ("--web-procs", str(web_procs)) if web_procs > 1 else ()
    if layout == "serve":
        return {"serve": start("serve", "--port", str(port), "--no-demo", *procs)}
    return {"web": start("web", "--port", str(port), *procs), "worker": start("worker")}


def family_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the sibling web processes of `--web-procs`)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return total


def stop_desk(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for p in processes.values():
        p.send_signal(signal.SIGTERM)
    for p in processes.values():
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


# --- the load -------------------------------------------------------------------------------------


def file_tickets(
    port: int, customers: list[tuple[str, str]], count: int, seed: int, connections: int = CONNECTIONS
) -> tuple[list[float], dict[int, int], float]:
    """File `count` tickets over CONNECTIONS kept-alive connections, closed loop; (latencies ms, codes, seconds)."""
    import aiohttp

    rng = random.Random(seed)
    plan = [(rng.choice(customers)[0], rng.choice(PROBLEMS), rng.choice(PRIORITIES)) for _ in range(count)]
    latencies: list[float] = []
    codes: dict[int, int] = {}
    url = f"http://127.0.0.1:{port}/api/v1/tickets"

    async def main() -> float:
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as http:
            pending = iter(enumerate(plan))

            async def connection() -> None:
                for i, (token, (subject, body), priority) in pending:
                    sent = time.perf_counter()
                    try:
                        async with http.post(
                            url,
                            json={"subject": f"{subject} #{i}", "body": body, "priority": priority},
                            headers={"Authorization": f"Bearer {token}"},
                        ) as answer:
                            await answer.read()
                            status = answer.status
                    except aiohttp.ClientError:
                        status = 0  # the connection broke: counted, never retried (it would hide a loss)
                    latencies.append((time.perf_counter() - sent) * 1000)
                    codes[status] = codes.get(status, 0) + 1

            start = time.perf_counter()
            await asyncio.gather(*(connection() for _ in range(connections)))
            return time.perf_counter() - start

    return latencies, codes, asyncio.run(main())


def due_jobs(engine: Any) -> int:
    """Jobs due now that no worker has finished: pending due or running."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(
            conn.execute(
                text("select count(*) from jobs where state = 'running' or (state = 'pending' and due_at <= :now)"),
                {"now": _now_for(engine)},
            ).scalar()
            or 0
        )


def _now_for(engine: Any) -> Any:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return now.replace(tzinfo=None) if engine.dialect.name == "sqlite" else now


def wait_worker_idle(engine: Any, pid: int, timeout: float = 600) -> float:
    """Seconds until the worker has no due job and used < 5 % of a core over a whole second."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(1.0)
        busy = (cpu_seconds(pid) - before) / (time.monotonic() - t0)
        if busy < 0.05 and due_jobs(engine) == 0:
            return max(0.0, t0 - started)
    return float("inf")


def counts(engine: Any) -> dict[str, int]:
    """What the database holds: tickets, their SLA contexts, first-response clocks, triage results."""
    from sqlalchemy import text

    queries = {
        "tickets": "select count(*) from tickets",
        "sla_tickets": "select count(*) from sla_tickets",
        "tickets_with_clocks": "select count(distinct ticket_id) from sla_clocks",
        "clocks_not_started_at_creation": (
            "select count(*) from sla_clocks c join tickets t on t.id = c.ticket_id "
            "where c.metric = 'first_response' and c.cycle = (select min(cycle) from sla_clocks c2 "
            "where c2.ticket_id = c.ticket_id and c2.metric = 'first_response') and c.started_at <> t.created_at"
        ),
        "triaged": "select count(*) from ticket_triage",
        "paged_tickets": "select count(*) from ticket_on_duty",
        "pages_sent": "select count(*) from notifications where subject_kind = 'incident' and state = 'sent'",
        "dead_jobs": "select count(*) from jobs where state = 'dead'",
    }
    with engine.connect() as conn:
        return {name: int(conn.execute(text(q)).scalar() or 0) for name, q in queries.items()}


def ticket_to_page(engine: Any) -> dict[str, list[float]]:
    """Seconds from each paged ticket's filing to its first page: queued (the page's message stored), due, and
    handed to the mail channel (sent) — the split says whether a slow page waited in the filing or the worker."""
    from sqlalchemy import text

    query = (
        "select t.created_at, min(n.created_at), min(n.due_at), min(n.sent_at) from ticket_on_duty d "
        "join tickets t on t.id = d.ticket_id "
        "join notifications n on n.subject_kind = 'incident' and n.subject_id = d.incident_id "
        "where n.sent_at is not null group by t.id, t.created_at"
    )

    def utc(value: Any) -> datetime:  # SQLite hands back text, PostgreSQL aware datetimes; both are UTC
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    with engine.connect() as conn:
        rows = conn.execute(text(query)).all()
    split: dict[str, list[float]] = {"queued": [], "due": [], "sent": []}
    for created, queued, due, sent in rows:
        for name, moment in (("queued", queued), ("due", due), ("sent", sent)):
            split[name].append((utc(moment) - utc(created)).total_seconds())
    return {name: sorted(values) for name, values in split.items()}


def bench(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="zhiban-tickets-"))
    db_url, drop = fresh_db(kind, workdir)
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(args.tree / "src"),
        ZHIBAN_DATABASE_URL=db_url,
        ZHIBAN_VAR_DIR=str(workdir),
        ZHIBAN_SECRET_KEY="bench-secret-key-bench-secret-key",
        ZHIBAN_DEMO="false",
        ZHIBAN_SIMULATE="false",
        ZHIBAN_LOG_LEVEL="WARNING",
        ZHIBAN_PORT=str(port),
        ZHIBAN_SMTP_URL="",
    )
    log = workdir / "desk.log"
    from zhiban.store.db import make_engine

    customers = setup_desk(db_url, env, paging=args.paging)
    processes = start_desk(args.layout, env, port, log, args.web_procs)
    engine = make_engine(db_url)
    worker_pid = processes.get("worker", processes.get("serve")).pid  # type: ignore[union-attr]
    try:
        wait_ready(port, timeout=600)  # a loaded machine can take minutes to import and start
        print("  processes: " + ", ".join(f"{name} {p.pid}" for name, p in processes.items()), flush=True)
        # Each organization's first ticket alone: it makes the organization's calendar (a one-time step).
        first = {org: (token, org) for token, org in reversed(customers)}
        for customer in first.values():
            file_tickets(port, [customer], 1, seed=0, connections=1)
        _, warm_codes, _ = file_tickets(port, customers, WARM_UP - len(first), seed=1)
        if warm_codes.get(201) != WARM_UP - len(first):
            raise SystemExit(f"warm-up failed: {warm_codes}; see {log}")
        warm_idle = wait_worker_idle(engine, worker_pid)
        print(f"  warm-up done, worker idle {warm_idle:.1f} s later", flush=True)
        before_counts = counts(engine)
        load = quiet_machine(args.quiet_timeout)
        cpu_before = {name: family_cpu_seconds(p.pid) for name, p in processes.items()}
        pg_before = postgres_cpu_seconds() if kind == "postgres" else 0.0
        latencies, codes, elapsed = file_tickets(port, customers, args.tickets, seed=2)
        load_after = os.getloadavg()[0]
        idle_after = wait_worker_idle(engine, worker_pid)
        cpu = {name: family_cpu_seconds(p.pid) - cpu_before[name] for name, p in processes.items()}
        pg_cpu = postgres_cpu_seconds() - pg_before if kind == "postgres" else None
        after_counts = counts(engine)
        page_delays = ticket_to_page(engine)
    finally:
        stop_desk(processes)
        engine.dispose()
        if drop:
            drop()
    filed = codes.get(201, 0)
    new = {k: after_counts[k] - before_counts[k] for k in ("tickets", "sla_tickets", "tickets_with_clocks", "triaged")}
    return {
        "db": kind,
        "layout": args.layout + (f", {args.web_procs} web processes" if args.web_procs > 1 else ""),
        "load": (load, load_after),
        "filed": filed,
        "codes": codes,
        "rate": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "cpu_ms": {name: s * 1000 / max(1, filed) for name, s in cpu.items()},
        "pg_cpu_ms": None if pg_cpu is None else pg_cpu * 1000 / max(1, filed),
        "idle_after": idle_after,
        "new": new,
        "clocks_not_started_at_creation": after_counts["clocks_not_started_at_creation"],
        "dead_jobs": after_counts["dead_jobs"],
        "paged": (after_counts["paged_tickets"], after_counts["pages_sent"]),
        "page_delays": page_delays,
        "log": str(log),
    }


def report(r: dict[str, Any]) -> None:
    cpu = ", ".join(f"{name} {ms:.2f} ms" for name, ms in r["cpu_ms"].items())
    if r["pg_cpu_ms"] is not None:
        cpu += f", PostgreSQL backends {r['pg_cpu_ms']:.2f} ms"
    new = r["new"]
    lost = {k: r["filed"] - v for k, v in new.items() if v != r["filed"]}
    print(f"\n{r['db']} ({r['layout']}), load average {r['load'][0]:.2f} before / {r['load'][1]:.2f} after the load")
    print(
        f"  {r['filed']} tickets filed (answers {r['codes']}): {r['rate']:.0f}/s, "
        f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms"
    )
    print(f"  CPU per ticket: {cpu}")
    print(f"  worker idle {r['idle_after']:.1f} s after the load (goal < 5 s)")
    print(
        f"  new rows: {new['tickets']} tickets, {new['sla_tickets']} SLA contexts, {new['tickets_with_clocks']} "
        f"with clocks, {new['triaged']} triaged; first-response clocks not started at creation: "
        f"{r['clocks_not_started_at_creation']}; dead jobs: {r['dead_jobs']}"
    )
    paged, sent = r["paged"]
    delays = r["page_delays"]
    if paged and delays["sent"]:
        print(
            f"  on duty: {paged} tickets paged, {sent} page mails sent; ticket -> page sent p50 "
            f"{percentile(delays['sent'], 0.5):.2f} s, p99 {percentile(delays['sent'], 0.99):.2f} s (goal < 2 s); "
            + ", ".join(
                f"-> {name} p50 {percentile(delays[name], 0.5):.2f} s / p99 {percentile(delays[name], 0.99):.2f} s"
                for name in ("queued", "due")
            )
        )
    print("  nothing lost" if not lost and not r["clocks_not_started_at_creation"] else f"  MISSING: {lost}")
    for source, rate, p99 in HELPDESK_QUOTED[r["db"]]:
        quoted = f"{rate:.0f}/s" + (f", p99 {p99:.0f} ms" if p99 else "")
        print(f"  vs django-helpdesk REST create as quoted in {source} ({quoted}): {r['rate'] / rate:.2f}x the rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--layout", choices=["split", "serve"], default="split")
    parser.add_argument("--web-procs", type=int, default=1, help="web processes on the one port (1-8)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose src/ the desk runs")
    parser.add_argument("--quiet-timeout", type=float, default=120.0)
    parser.add_argument(
        "--no-paging", dest="paging", action="store_false", help="all plans queue (nobody is paged for a ticket)"
    )
    args = parser.parse_args()
    if not 1 <= args.tickets <= 1_000_000:
        raise SystemExit("--tickets must be 1..1000000")
    if not 1 <= args.web_procs <= 8:
        raise SystemExit("--web-procs must be 1..8")
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise SystemExit(
            "the load client needs aiohttp: uv run --frozen --with aiohttp python bench/bench_tickets.py"
        ) from None
    sys.path.insert(0, str(args.tree / "src"))
    tree = subprocess.run(
        ["git", "-C", str(args.tree), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    print(f"tree {args.tree} ({tree.stdout.strip() or 'not a git checkout'}), {os.cpu_count()} cores", flush=True)
    for kind in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        print(f"\n== {kind}", flush=True)
        report(bench(kind, args))


if __name__ == "__main__":
    main()
