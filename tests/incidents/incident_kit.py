"""Shared pieces of the incident tests: a desk world with staff, a policy, a service, and a webhook receiver."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from zhiban.core.clock import Clock
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.handlers import desk_registry
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.incidents import integrations, service
from zhiban.notify import service as notify
from zhiban.notify.registry import ChannelDeps
from zhiban.notify.signing import verify_webhook_signature

WEBHOOK_SECRET = "receiver-secret-0123456789"


@dataclass
class Receiver:
    """A real HTTP webhook receiver on 127.0.0.1 that checks zhiban's signature and counts by idempotency key."""

    secret: str = WEBHOOK_SECRET
    status: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    keys: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""
    clock_now: Any = None  # callable giving the receiver's "now" for the signature window

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = receiver.clock_now() if receiver.clock_now else datetime.now(UTC)
                if not verify_webhook_signature(receiver.secret, self.headers.get("X-Zhiban-Signature", ""), body, now):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                receiver.keys[self.headers.get("Idempotency-Key", "")] += 1
                receiver.bodies.append(json.loads(body))
                code = receiver.status.pop(0) if receiver.status else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


@dataclass
class World:
    desk: Desk
    primary: str
    secondary: str
    admin: str
    policy: str
    service: str
    integration_key: str


def build(desk: Desk, receiver_url: str | None = None, *, urgency_rule: str = "high", ack_timeout: int = 30) -> World:
    """Two agents and an admin; a policy paging the primary, then the secondary after 5 minutes."""
    clock = desk.clock
    service.configure_links(secret_key=desk.secret_key, base_url="http://desk.test")
    notify.set_channel_deps(ChannelDeps(clock=clock))
    with desk.transaction() as s:
        primary = identity.create_person(s, clock, email="primary@vendor.test", name="Primary", role=Role.AGENT)
        secondary = identity.create_person(s, clock, email="secondary@vendor.test", name="Second", role=Role.AGENT)
        admin = identity.create_person(s, clock, email="boss@vendor.test", name="Boss", role=Role.ADMIN)
        if receiver_url:
            for person in (primary, secondary):
                method = notify.add_contact_method(
                    s,
                    clock,
                    person_id=person.id,
                    channel="webhook",
                    config={"url": receiver_url, "secret": WEBHOOK_SECRET},
                )
                notify.add_notification_rule(
                    s, clock, person_id=person.id, contact_method_id=method.id, delay_minutes=0
                )
        policy = service.create_policy(
            s,
            clock,
            name="network",
            levels=[
                {"delay_minutes": 5, "targets": [{"kind": "person", "ref": primary.email}]},
                {"delay_minutes": 5, "targets": [{"kind": "person", "ref": secondary.id}]},
            ],
        )
        svc = service.create_service(
            s,
            clock,
            name="media network cn-east",
            policy=policy.id,
            urgency_rule=urgency_rule,
            ack_timeout_minutes=ack_timeout,
        )
        integration = integrations.create_integration(s, clock, type_="events-v2", service_ref=svc.name)
        return World(desk, primary.id, secondary.id, admin.id, policy.id, svc.id, integration.key)


def worker(desk: Desk, clock: Clock | None = None) -> Worker:
    return Worker(desk.sessions, desk_registry(), clock or desk.clock)


def drain(w: Worker, rounds: int = 20) -> int:
    """Run due jobs until none is left due now."""
    total = 0
    for _ in range(rounds):
        ran = w.run_once(limit=50)
        total += ran
        if not ran:
            break
    return total


def trigger(
    key: str, dedup: str, summary: str = "sh-edge-07 packet loss", severity: str = "critical"
) -> dict[str, Any]:
    return {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": {"summary": summary, "source": "sh-edge-07", "severity": severity},
    }
