"""Paging soak: `zhiban web` + `zhiban worker` on PostgreSQL under an alert storm, the worker SIGKILLed every 2 minutes.

    .venv/bin/python bench/soak_paging.py [--minutes 10] [--rate 500] [--new-share 0.02] [--kill-every 120]

One command: a fresh PostgreSQL schema (127.0.0.1:5432), `zhiban migrate`, then `zhiban web` and
`zhiban worker` as real processes; an SMTP server (aiosmtpd) and a webhook receiver on 127.0.0.1 take the
pages. An open-loop generator sends Events v2 triggers at --rate for --minutes, --new-share of them with a
new dedup key (each a new incident whose two escalation steps page a person by e-mail and by webhook).
Every --kill-every seconds the worker gets SIGKILL and a new one starts. After the load the desk is given
time to page every step, then checked:

- every accepted event is stored (events in alerts == 202 answers), one incident per new key;
- every escalation step fired, and each of its pages is `sent` (or, for e-mail only, `unknown`, which the
  incident timeline and the auditor report);
- no e-mail arrived twice (by Message-ID); every mail marked sent arrived; webhook repeats carry the same key;
- RSS of the web process and of each worker (start, end, max).

Figures and PASS/FAIL are printed; the exit status is 0 only on PASS.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from bench_alerts import CONNECTIONS, free_port, fresh_db, percentile, post_json, wait_ready  # noqa: E402

MAIL_FROM = "desk@vendor.test"
WEBHOOK_SECRET = "soak-receiver-secret-0123"
LEVELS = 2  # two escalation steps per incident, one minute apart
SAMPLE_EVERY = 5.0  # seconds between RSS samples


# --- receivers ------------------------------------------------------------------------------------


class MailSink:
    """aiosmtpd on 127.0.0.1 counting mails by Message-ID; each DATA takes `delay` like a real relay."""

    def __init__(self, delay: float) -> None:
        from aiosmtpd.controller import Controller

        self.message_ids: Counter[str] = Counter()
        self.delay = delay
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.controller.port}?from={MAIL_FROM}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        # Counted on arrival: the relay has the mail whether or not the sender lives to read the 250.
        self.message_ids[str(parsed["Message-ID"])] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK"

    def stop(self) -> None:
        self.controller.stop()


class WebhookSink:
    """A webhook receiver on 127.0.0.1 counting pages by Idempotency-Key."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.keys[self.headers.get("Idempotency-Key", "")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a SIGKILLed worker resets its kept-alive connections: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the desk under test --------------------------------------------------------------------------


def zhiban(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `zhiban <command>` as its own process."""
    exe = Path(sys.executable).parent / "zhiban"
    with log.open("ab") as out:
        return subprocess.Popen([str(exe), command], env=env, stdout=out, stderr=subprocess.STDOUT)


def set_up_desk(db_url: str, mail: MailSink, hook: WebhookSink) -> str:
    """Two on-call people, each paged by e-mail and by webhook; a two-level policy; an Events v2 key."""
    import zhiban.store.models  # noqa: F401
    from zhiban.core.clock import SystemClock
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.identity import service as identity
    from zhiban.identity.model import Role
    from zhiban.incidents import integrations, service
    from zhiban.notify import service as notify

    settings = Settings(database_url=db_url, var_dir=tempfile.mkdtemp(), demo=False, simulate=False)
    desk = Desk(settings=settings, clock=SystemClock(), secret_key="soak")
    clock = desk.clock
    with desk.transaction() as s:
        people = []
        for n in range(LEVELS):
            person = identity.create_person(
                s, clock, email=f"oncall{n}@vendor.test", name=f"On-call {n}", role=Role.AGENT
            )
            for channel, config in (
                ("email", {"to": [person.email]}),
                ("webhook", {"url": hook.url, "secret": WEBHOOK_SECRET}),
            ):
                method = notify.add_contact_method(s, clock, person_id=person.id, channel=channel, config=config)
                notify.add_notification_rule(
                    s, clock, person_id=person.id, contact_method_id=method.id, delay_minutes=0
                )
            people.append(person.id)
        policy = service.create_policy(
            s,
            clock,
            name="soak",
            levels=[{"delay_minutes": 1, "targets": [{"kind": "person", "ref": p}]} for p in people],
        )
        svc = service.create_service(s, clock, name="media network cn-east", policy=policy.id, ack_timeout_minutes=0)
        key = integrations.create_integration(s, clock, type_="events-v2", service_ref=svc.id).key
    desk.db.dispose()
    return key


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Samples:
    """RSS of one process over its life, in MB."""

    name: str
    values: list[float] = field(default_factory=list)

    def add(self, pid: int) -> None:
        value = rss_mb(pid)
        if value is not None:
            self.values.append(value)

    def line(self) -> str:
        if not self.values:
            return f"{self.name}: no samples"
        v = self.values
        return f"{self.name}: start {v[0]:.0f} MB, end {v[-1]:.0f} MB, max {max(v):.0f} MB ({len(v)} samples)"


# --- the load -------------------------------------------------------------------------------------


@dataclass
class Load:
    """Open-loop triggers: request i is due at start + i / rate, whatever the server's answers."""

    port: int
    key: str
    rate: int
    seconds: float
    new_every: int
    codes: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    new_keys: set[str] = field(default_factory=set)
    accepted_keys: set[str] = field(default_factory=set)
    recent: list[str] = field(default_factory=list)
    sent: int = 0

    def body(self, i: int) -> tuple[bytes, str]:
        if i % self.new_every == 0 or not self.recent:
            dedup = f"soak-{i}"
            self.new_keys.add(dedup)
            self.recent.append(dedup)
            del self.recent[:-200]  # repeats hit the 200 newest alerts, as a flapping edge would
        else:
            dedup = self.recent[(i * 7919) % len(self.recent)]
        payload = {
            "routing_key": self.key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {"summary": f"{dedup} packet loss", "source": "sh-edge-07", "severity": "critical"},
        }
        return json.dumps(payload).encode(), dedup

    async def connection(self, c: int, start: float) -> None:
        total = int(self.rate * self.seconds)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for i in range(c, total, CONNECTIONS):
                delay = start + i / self.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                body, dedup = self.body(i)
                try:
                    code = await post_json(reader, writer, "/v2/enqueue", body)
                except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                    code = 0  # no answer: not accepted
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.sent += 1
                self.codes[code] += 1
                if code == 202:
                    self.accepted_keys.add(dedup)
                self.latencies.append((time.perf_counter() - (start + i / self.rate)) * 1000)
        finally:
            writer.close()

    def run(self) -> float:
        async def main() -> float:
            start = time.perf_counter() + 0.2
            await asyncio.gather(*(self.connection(c, start) for c in range(CONNECTIONS)))
            return time.perf_counter() - start

        return asyncio.run(main())


# --- the checks -----------------------------------------------------------------------------------


def settled(db_url: str) -> tuple[int, int, int]:
    """(scheduled steps, pages not yet final, deliver jobs not done) now."""
    from sqlalchemy import func, select

    from zhiban.engine.store import Job
    from zhiban.incidents.store import EscalationStepRow
    from zhiban.notify.store import NotificationRow
    from zhiban.store.db import make_engine, session_factory, transaction

    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine)) as s:
            steps = s.scalar(select(func.count()).where(EscalationStepRow.state == "scheduled")) or 0
            open_pages = s.scalar(select(func.count()).where(NotificationRow.state.in_(["pending", "sending"]))) or 0
            jobs = (
                s.scalar(
                    select(func.count()).where(Job.kind == "notify.deliver", Job.state.in_(["pending", "running"]))
                )
                or 0
            )
    finally:
        engine.dispose()
    return int(steps), int(open_pages), int(jobs)


def check(db_url: str, load: Load, mail: MailSink, hook: WebhookSink) -> tuple[list[str], list[str]]:
    """(figures, failures) from the database and the receivers."""
    from sqlalchemy import func, select

    import zhiban.store.models  # noqa: F401
    from zhiban.incidents.audit import unknown_pages
    from zhiban.incidents.store import AlertRow, EscalationStepRow, IncidentEventRow, IncidentRow
    from zhiban.notify.channels.email import derived_message_id
    from zhiban.notify.store import NotificationRow
    from zhiban.store.db import make_engine, session_factory, transaction

    figures: list[str] = []
    failures: list[str] = []
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as s:
        events = int(s.scalar(select(func.coalesce(func.sum(AlertRow.event_count), 0))) or 0)
        incidents = int(s.scalar(select(func.count()).select_from(IncidentRow)) or 0)
        steps = s.execute(select(EscalationStepRow.incident_id, EscalationStepRow.state)).all()
        pages = s.execute(
            select(
                NotificationRow.id,
                NotificationRow.subject_id,
                NotificationRow.idempotency_key,
                NotificationRow.channel,
                NotificationRow.state,
                NotificationRow.attempts,
            )
        ).all()
        audited = {page.notification_id for page in unknown_pages(s, limit=100_000)}
        reported = {
            data.get("notification")
            for data in s.scalars(select(IncidentEventRow.data).where(IncidentEventRow.kind == "page_unknown"))
        }
    engine.dispose()
    accepted = load.codes.get(202, 0)
    warm = 1  # the warm-up alert
    figures.append(f"events stored {events} for {accepted} accepted (+{warm} warm-up); incidents {incidents}")
    if events != accepted + warm:
        failures.append(f"events stored {events} != accepted {accepted} + {warm}")
    if incidents != len(load.accepted_keys) + warm:
        failures.append(f"incidents {incidents} != keys accepted {len(load.accepted_keys)} + {warm}")
    step_states = Counter(state for _, state in steps)
    figures.append(f"escalation steps {dict(step_states)} (expected {LEVELS} done per incident)")
    if step_states.get("done", 0) != LEVELS * incidents or len(steps) != LEVELS * incidents:
        failures.append(f"steps done {step_states.get('done', 0)} != {LEVELS} × {incidents} incidents")
    by_channel = Counter((p.channel, p.state) for p in pages)
    figures.append(f"pages by channel and state {dict(sorted(by_channel.items()))}")
    expected_pages = 2 * LEVELS * incidents  # one person per step, e-mail and webhook each
    if len(pages) != expected_pages:
        failures.append(f"pages {len(pages)} != {expected_pages} (2 per step)")
    bad = [
        (p.channel, p.state) for p in pages if not (p.state == "sent" or (p.channel, p.state) == ("email", "unknown"))
    ]
    if bad:
        failures.append(f"{len(bad)} pages neither sent nor (e-mail) unknown: {Counter(bad).most_common(5)}")
    # E-mail: at most once. No Message-ID twice; every sent mail arrived.
    mails = {derived_message_id(p.idempotency_key, MAIL_FROM): p for p in pages if p.channel == "email"}
    twice = {mid: n for mid, n in mail.message_ids.items() if n > 1}
    unknown = {p.id for p in mails.values() if p.state == "unknown"}
    sent_missing = [mid for mid, p in mails.items() if p.state == "sent" and mid not in mail.message_ids]
    unknown_arrived = sum(1 for mid, p in mails.items() if p.state == "unknown" and mid in mail.message_ids)
    figures.append(
        f"e-mail: {sum(mail.message_ids.values())} received, {len(twice)} Message-IDs twice; "
        f"{len(unknown)} unknown ({unknown_arrived} of them had reached the SMTP server), "
        f"{len(audited & unknown)} reported by the auditor, {len(reported & unknown)} on incident timelines"
    )
    if twice:
        failures.append(f"{len(twice)} e-mails received twice: {list(twice)[:3]}")
    if sent_missing:
        failures.append(f"{len(sent_missing)} e-mails marked sent never arrived")
    if set(mail.message_ids) - set(mails):
        failures.append("mails arrived that no page explains")
    if unknown - audited or unknown - reported:
        failures.append(
            f"unknown pages not reported: audit misses {len(unknown - audited)}, timeline {len(unknown - reported)}"
        )
    # Webhooks: at least once, repeats under the same key.
    hook_pages = {p.idempotency_key for p in pages if p.channel == "webhook"}
    repeats = Counter(n for n in hook.keys.values() if n > 1)
    figures.append(
        f"webhook: {sum(hook.keys.values())} received for {len(hook_pages)} pages; "
        f"keys received more than once: {sum(repeats.values())} ({dict(repeats)} by count)"
    )
    if set(hook.keys) != hook_pages:
        failures.append(f"webhook keys received {len(hook.keys)} != pages {len(hook_pages)}")
    return figures, failures


# --- the run --------------------------------------------------------------------------------------


def soak(minutes: float, rate: int, new_share: float, kill_every: float, smtp_delay: float, drain: float) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="zhiban-soak-"))
    db_url, drop = fresh_db("postgres", workdir)
    mail, hook = MailSink(smtp_delay), WebhookSink()
    port = free_port()
    env = dict(
        os.environ,
        ZHIBAN_DATABASE_URL=db_url,
        ZHIBAN_SECRET_KEY="soak",
        ZHIBAN_BASE_URL="http://127.0.0.1",
        ZHIBAN_SMTP_URL=mail.url,
        ZHIBAN_VAR_DIR=str(workdir / "var"),
        ZHIBAN_PORT=str(port),
        ZHIBAN_LOG_LEVEL="WARNING",
        ZHIBAN_DEMO="false",
        ZHIBAN_SIMULATE="false",
    )
    log = workdir / "desk.log"
    web = None
    workers: list[subprocess.Popen[bytes]] = []
    worker_rss: list[Samples] = []
    kills = 0
    try:
        subprocess.run(
            [str(Path(sys.executable).parent / "zhiban"), "migrate"], env=env, check=True, capture_output=True
        )
        key = set_up_desk(db_url, mail, hook)
        web = zhiban("web", env, log)
        workers.append(zhiban("worker", env, log))
        worker_rss.append(Samples("worker 1"))
        wait_ready(port)
        import httpx

        warm = {"routing_key": key, "event_action": "trigger", "dedup_key": "warm-up",
                "payload": {"summary": "warm-up", "source": "soak", "severity": "critical"}}  # fmt: skip
        httpx.post(f"http://127.0.0.1:{port}/v2/enqueue", json=warm, timeout=30).raise_for_status()
        time.sleep(2)
        web_rss = Samples("web")
        load = Load(port, key, rate, minutes * 60, max(1, round(1 / new_share)) if new_share else 10**12)
        stop = threading.Event()

        def chaos() -> None:
            nonlocal kills
            next_kill = time.monotonic() + kill_every
            while not stop.wait(SAMPLE_EVERY):
                web_rss.add(web.pid)
                worker_rss[-1].add(workers[-1].pid)
                if time.monotonic() >= next_kill:
                    os.kill(workers[-1].pid, signal.SIGKILL)
                    workers[-1].wait(10)
                    kills += 1
                    workers.append(zhiban("worker", env, log))
                    worker_rss.append(Samples(f"worker {len(workers)}"))
                    next_kill += kill_every
                    print(
                        f"  {time.strftime('%H:%M:%S')} SIGKILL worker {len(workers) - 1}; worker {len(workers)} up",
                        flush=True,
                    )

        load_before = os.getloadavg()
        chaos_thread = threading.Thread(target=chaos, daemon=True)
        chaos_thread.start()
        print(
            f"soak: {rate}/s for {minutes} min, new keys 1 in {load.new_every}, SIGKILL every {kill_every:.0f} s",
            flush=True,
        )
        elapsed = load.run()
        load_after = os.getloadavg()
        print(f"  load done: {load.sent} sent in {elapsed:.0f} s; draining (up to {drain:.0f} s)", flush=True)
        # Keep killing on schedule while the desk works off the last steps (they are due up to a minute later).
        deadline = time.monotonic() + drain
        state = settled(db_url)
        while time.monotonic() < deadline:
            state = settled(db_url)
            if state == (0, 0, 0):
                break
            time.sleep(5)
        stop.set()
        chaos_thread.join(10)
        web_rss.add(web.pid)
        worker_rss[-1].add(workers[-1].pid)
        time.sleep(1)
        figures, failures = check(db_url, load, mail, hook)
        if state != (0, 0, 0):
            failures.append(f"not settled after the drain: steps scheduled, pages open, deliver jobs = {state}")
    finally:
        for proc in [*([web] if web else []), *workers]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*([web] if web else []), *workers]:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        mail.stop()
        hook.stop()
        if drop:
            drop()
    p50, p99 = percentile(load.latencies, 0.5), percentile(load.latencies, 0.99)
    print(
        f"load: {load.sent} triggers at {load.sent / elapsed:.0f}/s (target {rate}), answers {dict(load.codes)}, "
        f"intake p50 {p50:.1f} ms p99 {p99:.1f} ms; {len(load.new_keys)} new keys; "
        f"load average {load_before[0]:.1f} → {load_after[0]:.1f} on {os.cpu_count()} cores; {kills} worker SIGKILLs"
    )
    for line in figures:
        print(line)
    print("RSS " + web_rss.line())
    for samples in worker_rss:
        print("RSS " + samples.line())
    # Flat: the web process ends within 20 % of where it stood once warm (its first quarter's highest).
    values = web_rss.values
    if len(values) >= 8:
        warm_rss = max(values[: len(values) // 4])
        growth = values[-1] / warm_rss
        print(f"RSS web end / first-quarter max = {growth:.2f}")
        if growth > 1.2:
            failures.append(f"web RSS grew {growth:.2f}×")
    for failure in failures:
        print("FAIL: " + failure)
    print("PASS" if not failures else "FAIL")
    print(f"(logs: {log})")
    return 0 if not failures else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--new-share", type=float, default=0.02, help="share of triggers with a new dedup key")
    parser.add_argument("--kill-every", type=float, default=120.0, help="seconds between worker SIGKILLs")
    parser.add_argument("--smtp-delay-ms", type=float, default=20.0, help="time the SMTP server takes per mail")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds allowed after the load to page the rest")
    args = parser.parse_args()
    if not (0.5 <= args.minutes <= 60 and 1 <= args.rate <= 2000 and 0 <= args.new_share <= 0.2):
        raise SystemExit("minutes 0.5..60, rate 1..2000, new-share 0..0.2")
    if not (10 <= args.kill_every <= 3600 and 0 <= args.smtp_delay_ms <= 1000 and 30 <= args.drain <= 1800):
        raise SystemExit("kill-every 10..3600 s, smtp-delay-ms 0..1000, drain 30..1800 s")
    code = soak(args.minutes, args.rate, args.new_share, args.kill_every, args.smtp_delay_ms / 1000, args.drain)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
