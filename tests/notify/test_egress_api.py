"""Over the API: every place a user gives a URL refuses internal destinations, and sends stay guarded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.incidents.incident_kit import Receiver, drain
from tests.tenancy import World, bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.features import load_hooks
from zhiban.handlers import desk_registry
from zhiban.identity.model import Principal, Role
from zhiban.incidents import service as incidents
from zhiban.notify import service as notify
from zhiban.notify.registry import ChannelDeps
from zhiban.notify.store import NotificationRow
from zhiban.status import service as status
from zhiban.status.store import SubscriptionRow

BLOCKED = "https://zhiban.dev/problems/blocked-destination"
SECRET = "api-egress-secret-0123"
STAFF = Principal(person_id="staff", role=Role.ADMIN, organization_id=None)
PAYLOADS = (
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://2130706433/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::ffff:127.0.0.1]/",
)
# The query each robot's URL must carry to be a well-formed config at all.
ROBOT_QUERY = {"webhook": "", "slack": "", "feishu": "", "dingtalk": "?access_token=t", "wecom": "?key=k"}


@pytest.fixture
def no_allowlist(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ZHIBAN_EGRESS_ALLOW", "")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _config(kind: str, url: str) -> dict[str, Any]:
    url = url + "robot/send" + ROBOT_QUERY[kind] if ROBOT_QUERY[kind] else url
    return {"url": url, "secret": SECRET} if kind == "webhook" else {"webhook_url": url}


def _refused(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == BLOCKED


@pytest.mark.parametrize("url", PAYLOADS)
def test_each_probe_payload_is_refused_everywhere(client: TestClient, desk: Desk, url: str, no_allowlist: None) -> None:
    w = build_world(desk)
    hook = {"url": url, "secret": SECRET}
    _refused(client.put(f"/api/v1/organizations/{w.liveco}/notice-webhook", headers=bearer(w.alice_token), json=hook))
    _refused(client.put(f"/api/v1/organizations/{w.liveco}/notice-webhook", headers=bearer(w.admin_token), json=hook))
    for page in (None, "liveco"):
        body = {"webhook_url": url, "webhook_secret": SECRET, "organization": page}
        _refused(client.post("/api/v1/status/subscriptions", headers=bearer(w.alice_token), json=body))
    for kind in ROBOT_QUERY:
        method = {"channel": kind, "config": _config(kind, url)}
        _refused(client.post("/api/v1/contact-methods", headers=bearer(w.agent_token), json=method))
    # Nothing was stored on the way.
    shown = client.get(f"/api/v1/organizations/{w.liveco}/notice-webhook", headers=bearer(w.admin_token)).json()
    assert shown["url"] is None
    assert client.get("/api/v1/contact-methods", headers=bearer(w.agent_token)).json() == []
    with desk.transaction() as s:
        assert s.scalar(select(func.count()).select_from(SubscriptionRow)) == 0


def test_a_public_url_is_still_accepted(client: TestClient, desk: Desk, no_allowlist: None) -> None:
    w = build_world(desk)
    hook = {"url": "https://93.184.215.14/hooks/zhiban", "secret": SECRET}
    put = client.put(f"/api/v1/organizations/{w.liveco}/notice-webhook", headers=bearer(w.alice_token), json=hook)
    assert put.status_code == 200, put.text
    method = {"channel": "slack", "config": {"webhook_url": "https://hooks.slack.com.invalid/services/T/B/X"}}
    assert client.post("/api/v1/contact-methods", headers=bearer(w.agent_token), json=method).status_code == 201


def _subscribed_world(desk: Desk, receiver: Receiver) -> tuple[World, str, str]:
    load_hooks()
    w = build_world(desk)
    alice = Principal(person_id=w.alice_id, role=Role.CUSTOMER, organization_id=w.liveco)
    with desk.transaction() as s:
        edge = incidents.create_service(s, desk.clock, name="media edge")
        incident = incidents.open_incident(s, desk.clock, edge, title="cn-north edge loss", severity="error").id
        sub = status.subscribe(s, desk.clock, alice, webhook_url=receiver.url, webhook_secret=receiver.secret)
        return w, incident, sub.id


def test_a_url_saved_while_allowed_is_refused_once_the_allowlist_goes(
    client: TestClient, desk: Desk, monkeypatch: pytest.MonkeyPatch, allow_loopback_egress: None
) -> None:
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    notify.set_channel_deps(ChannelDeps(clock=clock))
    worker = Worker(desk.sessions, desk_registry(), clock)
    receiver = Receiver(secret=SECRET, clock_now=clock.now)
    try:
        with receiver.running():
            w, incident, sub_id = _subscribed_world(desk, receiver)
            with desk.transaction() as s:
                status.post_update(s, clock, STAFF, incident, status="identified", body="A fibre cut.")
            drain(worker)
            assert len(receiver.bodies) == 1  # allowed: delivered
            monkeypatch.setenv("ZHIBAN_EGRESS_ALLOW", "")
            get_settings.cache_clear()
            with desk.transaction() as s:
                status.post_update(s, clock, STAFF, incident, status="monitoring", body="Rerouted.")
            drain(worker)
            assert len(receiver.bodies) == 1  # refused at send time: nothing more arrived
    finally:
        notify.set_channel_deps(None)
    with desk.transaction() as s:
        rows = list(s.scalars(select(NotificationRow).where(NotificationRow.subject_id == sub_id)))
        assert sorted((r.state, r.last_error) for r in rows) == [("failed", "blocked destination"), ("sent", None)]
    shown = client.get(
        "/api/v1/notifications",
        headers=bearer(w.admin_token),
        params={"subject_kind": "status_subscription", "subject_id": sub_id},
    ).json()
    assert sorted(str(n["last_error"]) for n in shown) == ["None", "blocked destination"]


def test_the_stored_error_is_only_a_class(client: TestClient, desk: Desk, allow_loopback_egress: None) -> None:
    """An internal service's answer must not come back through the notifications API (the port scanner)."""
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    notify.set_channel_deps(ChannelDeps(clock=clock))
    worker = Worker(desk.sessions, desk_registry(), clock)
    receiver = Receiver(secret=SECRET, clock_now=clock.now, status=[404])
    try:
        with receiver.running():
            w, incident, sub_id = _subscribed_world(desk, receiver)
            with desk.transaction() as s:
                status.post_update(s, clock, STAFF, incident, status="identified", body="A fibre cut.")
            drain(worker)
    finally:
        notify.set_channel_deps(None)
    shown = client.get(
        "/api/v1/notifications",
        headers=bearer(w.admin_token),
        params={"subject_kind": "status_subscription", "subject_id": sub_id},
    ).json()
    assert [(n["state"], n["last_error"]) for n in shown] == [("failed", "HTTP 404")]
