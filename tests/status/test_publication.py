"""Status pages publish only what was published: a service mapped to a public component, or an agent's update."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.incidents.incident_kit import Receiver, drain, worker
from tests.tenancy import World, bearer, build_world
from tests.zhiban_cli import zhiban as run_zhiban
from zhiban.desk import Desk
from zhiban.identity.model import Principal, Role
from zhiban.incidents import integrations
from zhiban.incidents import service as incidents
from zhiban.incidents.store import IncidentRow
from zhiban.status import service as status
from zhiban.status.store import PublishedServiceRow

NODE = "sh-edge-07"
SECRET = "status-hook-secret-123"
PUBLIC_TITLE = "Degraded audio and video in East China"


def _edge_alert(desk: Desk, client: TestClient) -> tuple[World, str]:
    """A platform service for an internal edge node and an Events v2 alert naming the node; (world, service id)."""
    world = build_world(desk)
    with desk.transaction() as s:
        svc = incidents.create_service(s, desk.clock, name=f"edge {NODE}")
        key = integrations.create_integration(s, desk.clock, type_="events-v2", service_ref=svc.id).key
        service_id = svc.id
    event = {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": f"{NODE}-loss",
        "payload": {
            "summary": f"{NODE} packet loss 38% on bond0",
            "source": f"{NODE}.sh.internal",
            "severity": "critical",
            "component": NODE,
            "group": "edge-loss",
        },
    }
    assert client.post("/v2/enqueue", json=event).status_code == 202
    return world, service_id


def _anonymous_views(client: TestClient) -> dict[str, Any]:
    return {
        "api": client.get("/api/v1/status").text,
        "html": client.get("/status?lang=en").text,
        "feed": client.get("/status/feed.atom").text,
        "doc": client.get("/api/v1/status").json(),
    }


def test_an_unmapped_edge_alert_shows_nothing_to_anonymous_viewers(client: TestClient, desk: Desk) -> None:
    world, _ = _edge_alert(desk, client)
    with desk.transaction() as s:
        assert s.scalar(select(IncidentRow.title)) == f"{NODE} packet loss 38% on bond0"
    views = _anonymous_views(client)
    for name in ("api", "html", "feed"):
        assert NODE not in views[name], name
    assert views["doc"]["current"] == [] and views["doc"]["history"] == []
    assert all(c["uptime_pct"] == 100.0 for c in views["doc"]["components"])
    # Nor on a customer's page: the incident is the platform's, and unpublished.
    mine = client.get("/api/v1/status/organizations/liveco", headers=bearer(world.alice_token))
    assert mine.status_code == 200 and mine.json()["current"] == [] and NODE not in mine.text


def test_a_mapped_service_shows_its_public_component_and_title_only(client: TestClient, desk: Desk) -> None:
    world, service_id = _edge_alert(desk, client)
    url = f"/api/v1/status/published-services/edge {NODE}"
    mapping = {"component": "cn-east", "title": PUBLIC_TITLE}
    assert client.put(url, json=mapping, headers=bearer(world.agent_token)).status_code == 403
    assert client.put(url, json=mapping, headers=bearer(world.alice_token)).status_code == 403
    refused = client.put(url, json={**mapping, "component": NODE}, headers=bearer(world.admin_token))
    assert refused.status_code == 422 and refused.json()["type"].endswith("/invalid-input")
    made = client.put(url, json=mapping, headers=bearer(world.admin_token))
    assert made.status_code == 200, made.text
    assert made.json()["service_id"] == service_id and made.json()["component"] == "cn-east"
    listed = client.get("/api/v1/status/published-services", headers=bearer(world.agent_token)).json()
    assert [(p["service"], p["title"]) for p in listed] == [(f"edge {NODE}", PUBLIC_TITLE)]

    desk.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    views = _anonymous_views(client)
    (shown,) = views["doc"]["current"]
    assert shown["title"] == PUBLIC_TITLE and shown["components"] == ["cn-east"]
    assert shown["severity"] == "critical"
    assert [u["body"] for u in shown["updates"]] == [f"We are investigating: {PUBLIC_TITLE}"]
    bars = {c["name"]: c["days"][-1]["worst_severity"] for c in views["doc"]["components"]}
    assert bars["cn-east"] == "critical" and bars["edge network"] == "none"
    for name in ("api", "html", "feed"):
        assert NODE not in views[name], name
        assert "bond0" not in views[name] and "packet loss" not in views[name]
    assert PUBLIC_TITLE in views["html"] and PUBLIC_TITLE in views["feed"]

    assert client.delete(url, headers=bearer(world.admin_token)).status_code == 204
    assert client.get("/api/v1/status").json()["current"] == []


def test_an_agent_publishes_an_incident_by_a_public_update(client: TestClient, desk: Desk) -> None:
    world, _ = _edge_alert(desk, client)
    with desk.transaction() as s:
        number = s.scalar(select(IncidentRow.number))
    path = f"/api/v1/status/incidents/{number}/updates"
    desk.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    update = {"status": "identified", "body": "A fibre cut near Shanghai; traffic is being rerouted."}
    assert client.post(path, json=update, headers=bearer(world.admin_token)).status_code == 201
    (shown,) = client.get("/api/v1/status").json()["current"]
    # Published without a title: a plain phrase, never the alert's summary.
    assert shown["title"] == "Service disruption"
    assert shown["updates"][0]["body"] == update["body"]
    titled = {**update, "status": "monitoring", "body": "Rerouted.", "title": "Packet loss in East China"}
    assert client.post(path, json=titled, headers=bearer(world.admin_token)).status_code == 201
    doc = client.get("/api/v1/status?lang=en")
    assert doc.json()["current"][0]["title"] == "Packet loss in East China" and NODE not in doc.text


def test_subscribers_hear_only_of_published_incidents_under_their_public_title(
    client: TestClient, desk: Desk, allow_loopback_egress: None
) -> None:
    receiver = Receiver(secret=SECRET, clock_now=desk.clock.now)
    with receiver.running():
        world = build_world(desk)
        alice = Principal(person_id=world.alice_id, role=Role.CUSTOMER, organization_id=world.liveco)
        admin = Principal(person_id=world.admin_id, role=Role.ADMIN, organization_id=None)
        with desk.transaction() as s:
            status.subscribe(s, desk.clock, alice, webhook_url=receiver.url, webhook_secret=SECRET)
            hidden = incidents.create_service(s, desk.clock, name=f"edge {NODE}")
            shown = incidents.create_service(s, desk.clock, name="edge sh-edge-03")
            status.publish_service(s, desk.clock, admin, shown.id, component="cn-east", title=PUBLIC_TITLE)
            incidents.open_incident(s, desk.clock, hidden, title=f"{NODE} packet loss", severity="critical")
            incidents.open_incident(s, desk.clock, shown, title="sh-edge-03 packet loss", severity="critical")
        desk.clock.advance(timedelta(minutes=2))  # type: ignore[attr-defined]
        w = worker(desk)
        drain(w)
        drain(w)
    assert [b["subject"] for b in receiver.bodies] == [f"[Investigating] {PUBLIC_TITLE}"]
    assert all("edge-0" not in str(b) for b in receiver.bodies)


def test_the_cli_publishes_and_lists(tmp_path: Path) -> None:
    import zhiban.store.models  # noqa: F401  (every table on Base.metadata)
    from zhiban.store.db import Base, make_engine, session_factory, transaction

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with transaction(session_factory(engine)) as s:
        from zhiban.core.clock import SystemClock

        incidents.create_service(s, SystemClock(), name=f"edge {NODE}")
    env = {"ZHIBAN_DATABASE_URL": url, "ZHIBAN_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = run_zhiban(
        "status", "publish", "--service", f"edge {NODE}", "--component", "cn-east", "--title", PUBLIC_TITLE, "--json",
        env=env,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert '"component": "cn-east"' in ok.stdout
    bad = run_zhiban("status", "publish", "--service", "nope", "--component", "cn-east", "--title", "x", env=env)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: no service")
    with transaction(session_factory(engine)) as s:
        assert s.scalar(select(PublishedServiceRow.title)) == PUBLIC_TITLE


def test_the_demo_publishes_its_edges_under_public_titles(desk: Desk) -> None:
    from zhiban.demo.seed import seed_demo_world

    with desk.transaction() as s:
        seed_demo_world(s, desk.clock)
    with desk.transaction() as s:
        # The telemetry detector raises an edge's incident on the service "edge <node>", made by the demo.
        edge = incidents.get_service(s, f"edge {NODE}")
        incidents.open_incident(s, desk.clock, edge, title=f"liveco: loss up (edge={NODE})", severity="critical")
        page = status.build_page(s, desk.clock, None, lang="en", tz="UTC")
    (shown,) = page.current
    assert shown.title.startswith("Degraded audio and video in cn-east") and shown.components == ("cn-east",)
    assert all(NODE not in u.body for u in shown.updates)
