"""The incident API over HTTP: Events v2 answers in PagerDuty's shape; tenancy; ack links; the staff pages."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.incidents.incident_kit import build, drain, trigger, worker
from tests.tenancy import bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.incidents import api as incidents_api
from zhiban.incidents import enqueue, service
from zhiban.incidents.store import IncidentRow
from zhiban.notify.store import NotificationRow
from zhiban.web.observability import REGISTRY


def test_events_v2_shapes(client: TestClient, desk: Desk) -> None:
    world = build(desk)
    ok = client.post("/v2/enqueue", json=trigger(world.integration_key, "edge-07"))
    assert ok.status_code == 202
    assert ok.json() == {"status": "success", "message": "Event processed", "dedup_key": "edge-07"}
    # Without a dedup key one is made up and returned, as PagerDuty does.
    made = client.post("/v2/enqueue", json={**trigger(world.integration_key, "x"), "dedup_key": None})
    assert made.status_code == 202 and len(made.json()["dedup_key"]) == 32
    bad = client.post("/v2/enqueue", json={"routing_key": world.integration_key, "event_action": "trigger"})
    assert bad.status_code == 400
    body = bad.json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any("payload" in e for e in body["errors"])
    assert client.post("/v2/enqueue", content=b"{not json").json()["status"] == "invalid event"
    unknown = client.post("/v2/enqueue", json=trigger("0" * 32, "k"))
    assert unknown.status_code == 400 and "routing_key" in unknown.json()["errors"][0]


def test_events_v2_fast_path_bounds_the_body_and_keeps_ids_and_metrics(client: TestClient, desk: Desk) -> None:
    world = build(desk)

    def count(status: str) -> float:
        labels = {"method": "POST", "route": "/v2/enqueue", "status": status}
        return REGISTRY.get_sample_value("zhiban_http_requests_total", labels) or 0.0

    before = count("202"), count("400")
    huge = b'{"routing_key": "' + b"x" * (enqueue.MAX_EVENT_BYTES + 1) + b'"}'
    refused = client.post("/v2/enqueue", content=huge)
    assert refused.status_code == 400 and "larger than" in refused.json()["errors"][0]
    ok = client.post("/v2/enqueue", json=trigger(world.integration_key, "k"), headers={"X-Request-Id": "req-42"})
    assert ok.status_code == 202 and ok.headers["x-request-id"] == "req-42"
    assert re.fullmatch(r"[0-9a-f]{32}", client.post("/v2/enqueue", content=b"[]").headers["x-request-id"])
    assert (count("202") - before[0], count("400") - before[1]) == (1, 2)
    desk.settings.metrics_token = "scrape-token"
    assert 'route="/v2/enqueue",status="202"}' in client.get("/metrics", headers=bearer("scrape-token")).text
    # Other methods and paths go on to the router as before.
    assert client.get("/v2/enqueue").status_code == 405


def test_events_v2_route_answers_alike_without_the_fast_path(desk: Desk) -> None:
    world = build(desk)
    bare = FastAPI()
    bare.state.desk = desk
    bare.include_router(incidents_api.router)
    with TestClient(bare) as plain:
        ok = plain.post("/v2/enqueue", json=trigger(world.integration_key, "routed"))
        bad = plain.post("/v2/enqueue", content=b"{not json")
    assert ok.status_code == 202 and ok.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "routed",
    }
    assert bad.status_code == 400 and bad.json()["status"] == "invalid event"


def test_events_v2_throttles_per_routing_key(client: TestClient, desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    world = build(desk)
    monkeypatch.setattr(enqueue, "EVENTS_THROTTLE", enqueue.TokenBucket(rate=0.001, burst=2))
    codes = [client.post("/v2/enqueue", json=trigger(world.integration_key, "k")).status_code for _ in range(3)]
    assert codes == [202, 202, 429]


def test_incident_api_ack_resolve_and_tenancy(client: TestClient, desk: Desk) -> None:
    tenants = build_world(desk)
    world = build(desk)
    client.post("/v2/enqueue", json=trigger(world.integration_key, "edge-07"))
    staff = bearer(tenants.admin_token)
    [incident] = client.get("/api/v1/incidents", headers=staff).json()
    iid = incident["id"]
    assert (
        client.post(f"/api/v1/incidents/{iid}/notes", json={"body": "suspect sh-edge-07"}, headers=staff).status_code
        == 201
    )
    # A customer sees nothing until a ticket of theirs is linked; then the public timeline only.
    alice = bearer(tenants.alice_token)
    assert client.get("/api/v1/incidents", headers=alice).json() == []
    assert client.get(f"/api/v1/incidents/{iid}", headers=alice).status_code == 404
    ticket = client.post(
        "/api/v1/tickets", json={"subject": "freeze", "body": "b", "priority": "P1"}, headers=alice
    ).json()
    with desk.transaction() as s:
        service.link_ticket(s, iid, ticket["id"])
    seen = client.get(f"/api/v1/incidents/{iid}", headers=alice).json()
    assert seen["ticket_ids"] == [ticket["id"]]
    assert "suspect" not in str(seen) and {e["kind"] for e in seen["timeline"]} == {"triggered"}
    assert client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=alice).status_code == 403
    assert client.get(f"/api/v1/incidents/{iid}", headers=bearer(tenants.bob_token)).status_code == 404
    acked = client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=staff).json()
    assert acked["status"] == "acknowledged"
    resolved = client.post(f"/api/v1/incidents/{iid}/resolve", headers=staff).json()
    assert resolved["status"] == "resolved"
    kinds = [e["kind"] for e in client.get(f"/api/v1/incidents/{iid}", headers=staff).json()["timeline"]]
    assert kinds.index("triggered") < kinds.index("acknowledged") < kinds.index("resolved") and "note" in kinds


def test_alertmanager_and_heartbeat_endpoints(client: TestClient, desk: Desk) -> None:
    tenants = build_world(desk)
    world = build(desk)
    admin = bearer(tenants.admin_token)
    am = client.post(
        "/api/v1/integrations", json={"type": "alertmanager", "service": "media network cn-east"}, headers=admin
    )
    assert am.status_code == 201
    doc = {
        "version": "4",
        "groupKey": "g1",
        "status": "firing",
        "receiver": "zhiban",
        "alerts": [{"status": "firing", "labels": {"alertname": "EdgeLoss"}, "annotations": {}, "fingerprint": "abc"}],
    }
    assert client.post(am.json()["url"], json=doc).json() == {"status": "success", "alerts": 1}
    assert client.post("/api/v1/integrations/alertmanager/nokey", json=doc).status_code == 404
    hb = client.post(
        "/api/v1/integrations",
        json={"type": "heartbeat", "service": world.service, "heartbeat_seconds": 60},
        headers=admin,
    ).json()
    assert client.post(hb["url"]).status_code == 200
    # A key of another type does not open a heartbeat.
    assert client.post(f"/api/v1/heartbeats/{world.integration_key}").status_code == 404
    assert client.get("/api/v1/integrations", headers=bearer(tenants.alice_token)).status_code == 403


def test_ack_link_confirms_then_acknowledges(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    world = build(desk)
    client.post("/v2/enqueue", json=trigger(world.integration_key, "edge-07"))
    drain(worker(desk))
    with desk.transaction() as s:
        page = s.scalars(select(NotificationRow)).one()
        link = next(link[1] for link in page.message["links"] if link[0] == "acknowledge")
        incident_id = s.scalars(select(IncidentRow.id)).one()
    path = re.sub(r"^http://desk\.test", "", link)
    confirm = client.get(path)
    assert confirm.status_code == 200 and "<form" in confirm.text
    with desk.transaction() as s:
        assert s.get(IncidentRow, incident_id).status == "triggered"  # a GET changes nothing
    done = client.post(path)
    assert done.status_code == 200
    with desk.transaction() as s:
        row = s.get(IncidentRow, incident_id)
        assert row.status == "acknowledged" and row.acknowledged_by == world.primary
    assert client.post(path[:-3] + "abc").status_code == 400


def test_staff_pages_render_and_forms_act(client: TestClient, desk: Desk) -> None:
    tenants = build_world(desk)
    world = build(desk)
    client.post("/v2/enqueue", json=trigger(world.integration_key, "edge-07", summary="sh-edge-07 丢包"))
    staff = bearer(tenants.admin_token)
    listing = client.get("/incidents", headers=staff)
    assert listing.status_code == 200 and "sh-edge-07 丢包" in listing.text
    iid = client.get("/api/v1/incidents", headers=staff).json()[0]["id"]
    page = client.get(f"/incidents/{iid}", headers=staff)
    assert page.status_code == 200 and "/acknowledge" in page.text
    assert client.get("/incidents", headers=bearer(tenants.alice_token)).status_code == 403
    assert client.post(f"/incidents/{iid}/acknowledge", headers=staff, follow_redirects=False).status_code == 303


def test_metrics_show_the_job_engine_beside_the_requests(client: TestClient, desk: Desk) -> None:
    world = build(desk)
    assert client.post("/v2/enqueue", json=trigger(world.integration_key, "edge-07")).status_code == 202
    drain(worker(desk))  # delivers the page queued by the trigger
    desk.settings.metrics_token = "scrape-token"
    metrics = client.get("/metrics", headers=bearer("scrape-token")).text
    assert 'zhiban_jobs_finished_total{kind="notify.deliver",outcome="done"}' in metrics
    assert 'zhiban_http_requests_total{method="POST",route="/v2/enqueue",status="202"}' in metrics
