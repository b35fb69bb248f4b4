"""Status pages over HTTP: the public page and feed without sign-in, private pages for their tenant only."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world
from zhiban.desk import Desk
from zhiban.incidents import service as incidents


def test_public_and_private_pages(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        edge = incidents.create_service(s, desk.clock, name="media edge")
        app = incidents.create_service(s, desk.clock, name="liveco app", organization_id=w.liveco)
        public = incidents.open_incident(s, desk.clock, edge, title="cn-north edge loss", severity="error").id
        incidents.open_incident(s, desk.clock, app, title="LiveCo secret outage", severity="critical")

    desk.clock.advance(timedelta(minutes=7))  # type: ignore[attr-defined]
    body = {"status": "identified", "body": "A fibre cut near Tianjin.", "components": ["cn-north"],
            "title": "cn-north edge loss"}  # fmt: skip
    update = client.post(f"/api/v1/status/incidents/{public}/updates", headers=bearer(w.admin_token), json=body)
    assert update.status_code == 201
    assert client.post(f"/api/v1/status/incidents/{public}/updates", headers=bearer(w.alice_token),
                       json={"status": "identified", "body": "x"}).status_code == 403  # fmt: skip

    doc = client.get("/api/v1/status").json()  # no sign-in needed
    assert [i["title"] for i in doc["current"]] == ["cn-north edge loss"]
    assert doc["current"][0]["severity"] == "major" and doc["current"][0]["components"] == ["cn-north"]
    assert doc["current"][0]["updates"][0]["body"] == "A fibre cut near Tianjin."
    html = client.get("/status?lang=en")
    assert html.status_code == 200 and "A fibre cut near Tianjin." in html.text and "LiveCo secret" not in html.text
    feed = client.get("/status/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert ET.fromstring(feed.content).tag == "{http://www.w3.org/2005/Atom}feed"

    mine = client.get("/api/v1/status/organizations/liveco", headers=bearer(w.alice_token)).json()
    assert {i["title"] for i in mine["current"]} == {"cn-north edge loss", "LiveCo secret outage"}
    assert client.get("/api/v1/status/organizations/liveco", headers=bearer(w.bob_token)).status_code == 404
    page = client.get("/status/org/liveco", headers=bearer(w.alice_token))
    assert page.status_code == 200 and "LiveCo secret outage" in page.text
    assert client.get("/status/org/liveco", headers=bearer(w.bob_token)).status_code == 404
    feed_path = page.text.split('href="/status/org/liveco/feed.atom?token=')[1].split('"')[0]
    private = client.get(f"/status/org/liveco/feed.atom?token={feed_path}")
    assert private.status_code == 200 and b"LiveCo secret outage" in private.content
    assert client.get("/status/org/liveco/feed.atom?token=guess").status_code == 404

    sub = client.post("/api/v1/status/subscriptions", json={"email": "noc@viewer.test"})
    assert sub.status_code == 201 and sub.json()["confirmed"] is False
    hook = {"webhook_url": "https://x.test/h", "webhook_secret": "s" * 16}
    assert client.post("/api/v1/status/subscriptions", json=hook).status_code == 403
    assert client.post("/api/v1/status/subscriptions", headers=bearer(w.bob_token),
                       json={"organization": "liveco", "email": "bob@x.test"}).status_code == 404  # fmt: skip
    form = client.post("/status/subscribe", data={"email": "not-an-address"})
    assert form.status_code == 422 and 'role="alert"' in form.text
