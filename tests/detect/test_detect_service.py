"""From a detection to the desk: an incident on the right service (one platform incident for an edge that
hurts several customers), resolved on recovery; a Premium/Enterprise customer told once by e-mail (real
SMTP server) and by its signed webhook (real HTTP receiver), a Basic one not; its ticket linked."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world
from zhiban.apps import service as apps
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import NotFound
from zhiban.desk import Desk
from zhiban.detect import service
from zhiban.detect.detections import Detection, DetectionEvent
from zhiban.detect.incident_sync import INTEGRATION_NAME
from zhiban.engine import Worker
from zhiban.handlers import desk_registry
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.incidents import service as incidents
from zhiban.notify import service as notify
from zhiban.notify.egress import guarded_client
from zhiban.notify.registry import ChannelDeps

SECRET = "liveco-webhook-secret-0123"


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@dataclass
class Hooks:
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox(clock: FrozenClock, allow_loopback_egress: None) -> Iterator[Mailbox]:
    box = Mailbox()
    port = _port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    client = guarded_client(timeout=5.0)  # reaches the loopback receiver through the allowlist
    notify.set_channel_deps(
        ChannelDeps(client=client, clock=clock, smtp_url=f"smtp://127.0.0.1:{port}?from=desk@zhiban.test")
    )
    yield box
    notify.set_channel_deps(None)
    client.close()
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[Hooks]:
    hooks = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hooks.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hooks.url = f"http://127.0.0.1:{server.server_address[1]}/zhiban"
    yield hooks
    server.shutdown()


def drain(desk: Desk, clock: FrozenClock) -> None:
    worker = Worker(desk.sessions, desk_registry(), clock)
    for _ in range(20):
        if not worker.run_once(limit=50):
            break


def detection(app_id: str, at: Any, slice_: dict[str, str], *, closed: Any = None) -> Detection:
    return Detection(app_id=app_id, metric="video_freeze_rate", direction="up", opened_at=at,
                     detected_at=at + timedelta(seconds=30), slice=slice_, baseline=0.011, observed=0.093,
                     sessions=4120, severity="critical", closed_at=closed)  # fmt: skip


@dataclass
class Desked:
    w: Any
    basic: str


@pytest.fixture
def world(desk: Desk) -> Desked:
    w = build_world(desk)
    with desk.transaction() as s:
        basic = identity.create_organization(s, desk.clock, name="Chatterbox", slug="chatterbox", plan="basic")
        identity.create_person(s, desk.clock, email="dev@chatterbox.test", name="Dev", role=Role.CUSTOMER,
                               organization_id=basic.id, language="en")  # fmt: skip
        for app_id, slug in (("liveco", "liveco"), ("hiyo", "chatterbox")):
            apps.ensure_app(s, desk.clock, app_id=app_id, organization_slug=slug)
    return Desked(w, basic.id)


def record(desk: Desk, *events: DetectionEvent) -> None:
    with desk.transaction() as s:
        service.record_events(s, desk.clock, list(events))


def test_edge_fault_opens_one_platform_incident_tells_the_enterprise_customer_once_and_resolves(
    desk: Desk, clock: FrozenClock, world: Desked, mailbox: Mailbox, receiver: Hooks, client: TestClient
) -> None:
    w = world.w
    put = client.put(
        f"/api/v1/organizations/{w.liveco}/notice-webhook",
        json={"url": receiver.url, "secret": SECRET},
        headers=bearer(w.alice_token),
    )
    assert put.status_code == 200 and put.json()["secret_set"] is True and SECRET not in put.text
    at = clock.now() - timedelta(seconds=40)
    live = detection("liveco", at, {"region": "cn-east", "edge": "sh-edge-07"})
    other = detection("hiyo", at, {"edge": "sh-edge-07"})
    other.metric = "loss_p95_pct"
    record(desk, DetectionEvent("opened", live), DetectionEvent("opened", other))
    drain(desk, clock)

    with desk.transaction() as s:
        rows = service.list_detections(s, service.SYSTEM)
        assert {r.incident_id for r in rows} != {None} and len({r.incident_id for r in rows}) == 1
        incident_id = rows[0].incident_id
        view = incidents.get_incident(s, service.SYSTEM, incident_id)
        # One cause, two customers: one platform incident on the edge's service, not one per app.
        assert view.service_name == "edge sh-edge-07" and view.incident.organization_id is None
        assert view.incident.status == "triggered" and len(view.alerts) == 2
        assert {a.source for a in view.alerts} == {"zhiban telemetry detector"}

    # LiveCo (Enterprise): Alice by e-mail in her language, and the signed webhook; Chatterbox (Basic): nothing.
    assert [m["To"] for m in mailbox.messages] == ["alice@liveco.test"]
    mail = mailbox.messages[0]
    text = mail.get_body(("plain",)).get_content()
    assert "liveco" in text and "edge=sh-edge-07" in text and "/status/org/liveco" in text
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    stamp, _, signature = headers["x-zhiban-signature"].partition(",")
    t = stamp.removeprefix("t=")
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature == f"v1={expected}"
    payload = json.loads(body)
    assert payload["event"] == "incident.notice" and payload["metadata"]["app_id"] == "liveco"
    assert "/status/org/liveco" in payload["links"][0]["url"]

    # The same detection recorded again (a redelivery), and a worse update: nobody is told twice.
    live.severity = "critical"
    record(desk, DetectionEvent("opened", live), DetectionEvent("updated", live))
    drain(desk, clock)
    assert len(mailbox.messages) == 1 and len(receiver.received) == 1

    # Alice files a ticket meanwhile: it is linked to the incident (and triage sees an open incident).
    ticket = client.post("/api/v1/tickets", json={"subject": "卡顿", "body": "直播卡"}, headers=bearer(w.alice_token))
    assert ticket.status_code == 201
    drain(desk, clock)  # the link follows the filing in a batch (tickets.events.follow), off the request's path
    with desk.transaction() as s:
        assert ticket.json()["id"] in incidents.get_incident(s, service.SYSTEM, incident_id).ticket_ids

    # Recovery: both detections close (the engine's 3 clean windows) and the incident resolves.
    live.closed_at = other.closed_at = clock.now()
    record(desk, DetectionEvent("closed", live))
    drain(desk, clock)
    with desk.transaction() as s:
        assert incidents.get_incident(s, service.SYSTEM, incident_id).incident.status == "triggered"
    record(desk, DetectionEvent("closed", other))
    drain(desk, clock)
    with desk.transaction() as s:
        assert incidents.get_incident(s, service.SYSTEM, incident_id).incident.status == "resolved"
        assert {r.state for r in service.list_detections(s, service.SYSTEM)} == {"closed"}


def test_app_fault_opens_the_customers_own_incident_and_a_basic_customer_is_not_told(
    desk: Desk, clock: FrozenClock, world: Desked, mailbox: Mailbox
) -> None:
    record(desk, DetectionEvent("opened", detection("hiyo", clock.now(), {"platform": "ios"})))
    drain(desk, clock)
    with desk.transaction() as s:
        row = service.list_detections(s, service.SYSTEM)[0]
        view = incidents.get_incident(s, service.SYSTEM, row.incident_id)
        assert view.service_name == "app hiyo" and view.incident.organization_id == world.basic
        integrations = {a.integration_id for a in view.alerts}
        assert len(integrations) == 1
    assert mailbox.messages == []
    assert INTEGRATION_NAME == "zhiban telemetry detector"


def test_a_slice_sharpened_after_the_alert_keeps_it_in_its_incident(
    desk: Desk, clock: FrozenClock, world: Desked, mailbox: Mailbox
) -> None:
    # Found app-wide first; a minute later the engine names the edge (refined_at): the alert stays in the
    # app's incident and resolves there, rather than opening an edge incident that nothing would resolve.
    found = detection("hiyo", clock.now(), {})
    record(desk, DetectionEvent("opened", found))
    drain(desk, clock)
    found.slice = {"region": "us-east", "edge": "nyc-edge-01"}
    found.refined_at = clock.now() + timedelta(minutes=1)
    found.severity = "major"  # a new stage of the detection, so its sync runs again
    record(desk, DetectionEvent("updated", found))
    drain(desk, clock)
    with desk.transaction() as s:
        row = service.list_detections(s, service.SYSTEM)[0]
        assert row.slice == {"region": "us-east", "edge": "nyc-edge-01"}
        view = incidents.get_incident(s, service.SYSTEM, row.incident_id)
        assert view.service_name == "app hiyo" and len(view.alerts) == 1
        with pytest.raises(NotFound):
            incidents.get_service(s, "edge nyc-edge-01")
        incident_id = row.incident_id
    found.closed_at = clock.now()
    record(desk, DetectionEvent("closed", found))
    drain(desk, clock)
    with desk.transaction() as s:
        assert incidents.get_incident(s, service.SYSTEM, incident_id).incident.status == "resolved"


def test_customers_read_only_their_own_detections(
    desk: Desk, clock: FrozenClock, world: Desked, client: TestClient
) -> None:
    record(desk, DetectionEvent("opened", detection("liveco", clock.now(), {"edge": "sh-edge-07"})))
    w = world.w
    mine = client.get("/api/v1/detections", headers=bearer(w.alice_token)).json()
    assert [d["app_id"] for d in mine] == ["liveco"] and mine[0]["slice"] == {"edge": "sh-edge-07"}
    assert client.get("/api/v1/detections", headers=bearer(w.bob_token)).json() == []
    assert client.get(f"/api/v1/detections/{mine[0]['id']}", headers=bearer(w.bob_token)).status_code == 404


def test_staff_page_lists_detections_in_both_languages(
    desk: Desk, clock: FrozenClock, world: Desked, client: TestClient
) -> None:
    record(desk, DetectionEvent("opened", detection("liveco", clock.now(), {"edge": "sh-edge-07"})))
    w = world.w
    en = client.get("/agent/detections?lang=en", headers=bearer(w.agent_token))
    assert en.status_code == 200 and "Video freezes" in en.text and "edge=sh-edge-07" in en.text
    zh = client.get("/agent/detections?lang=zh", headers=bearer(w.agent_token))
    assert "视频卡顿率" in zh.text
    assert client.get("/agent/detections", headers=bearer(w.alice_token)).status_code == 403
