"""The ticket page's ownership forms and the portal's RTC fields, through the browser's forms (CSRF, cookies)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world, web_login
from zhiban.apps import service as apps
from zhiban.desk import Desk


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Pages render the same on both databases: SQLite only (the API tests cover PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'zhiban.db'}"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def test_portal_files_a_ticket_with_rtc_fields_in_the_customers_zone(client: TestClient, desk: Desk) -> None:
    w = build_world(desk, passwords=True)
    with desk.transaction() as s:
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="liveco-live", organization_id=w.liveco)
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="classmate-edu", organization_id=w.classmate)
    assert web_login(client, "alice@liveco.test").status_code == 303
    form = client.get("/portal/new?lang=en")
    assert '<option value="liveco-live"' in form.text and "classmate-edu" not in form.text
    assert "When it happened (Asia/Shanghai)" in form.text
    token = _csrf(form.text)
    data = {
        "subject": "首帧慢",
        "body": "观众进房首帧超过 3 秒",
        "csrf_token": token,
        "app_id": "liveco-live",
        "channel_name": "room-8842",
        "user_ids": "1001, 1002，1003",
        "sdk_version": "4.3.2",
        "platform": "ios",
        "occurred_at": "2026-11-21T02:30",  # LiveCo's zone: 2026-11-20 18:30 UTC
    }
    r = client.post("/portal/new", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    tid = int(r.headers["location"].rsplit("/", 1)[1])
    fields = client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.alice_token)).json()["fields"]
    assert fields == {
        "app_id": "liveco-live",
        "channel_name": "room-8842",
        "user_ids": ["1001", "1002", "1003"],
        "sdk_version": "4.3.2",
        "platform": "ios",
        "occurred_at": "2026-11-20T18:30:00Z",
    }
    # Another organization's app is refused, the form comes back with what was typed, nothing is filed.
    bad = client.post("/portal/new", data=data | {"app_id": "classmate-edu", "subject": "again"})
    assert bad.status_code == 422 and "room-8842" in bad.text
    assert len(client.get("/api/v1/tickets", headers=bearer(w.alice_token)).json()) == 1
    # The customer edits the fields on the ticket page.
    page = client.get(f"/tickets/{tid}?lang=en")
    assert "RTC details" in page.text and "room-8842" in page.text
    assert 'value="2026-11-21T02:30"' in page.text  # shown back in the customer's zone
    r = client.post(
        f"/tickets/{tid}/fields",
        data={"csrf_token": _csrf(page.text), "app_id": "liveco-live", "channel_name": "room-9", "occurred_at": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    after = client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.alice_token)).json()["fields"]
    assert after["channel_name"] == "room-9" and after["occurred_at"] is None and after["user_ids"] is None
    # The agents' forms are not on the customer's page, and posting them is refused.
    assert f'action="/tickets/{tid}/take"' not in page.text and 'data-testid="ownership"' not in page.text
    r = client.post(f"/tickets/{tid}/take", data={"csrf_token": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 403


def test_agent_takes_tags_and_merges_from_the_ticket_page(client: TestClient, desk: Desk) -> None:
    w = build_world(desk, passwords=True)
    alice = bearer(w.alice_token)
    kept = client.post("/api/v1/tickets", json={"subject": "kept", "body": "b"}, headers=alice).json()["id"]
    dup = client.post("/api/v1/tickets", json={"subject": "dup", "body": "b"}, headers=alice).json()["id"]
    assert web_login(client, "agent@vendor.test").status_code == 303
    page = client.get(f"/tickets/{dup}?lang=en")
    token = _csrf(page.text)
    assert 'data-testid="take"' in page.text
    for path, data in (
        (f"/tickets/{dup}/take", {}),
        (f"/tickets/{dup}/tags", {"tags": "android, 卡顿"}),
        (f"/tickets/{dup}/follow", {}),
        (f"/tickets/{dup}/priority", {"priority": "P2", "reason": "many viewers"}),
        (f"/tickets/{dup}/merge", {"into": f"#{kept}", "reason": "same room"}),
    ):
        r = client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)
        assert r.status_code == 303, (path, r.text)
    t = client.get(f"/api/v1/tickets/{dup}", headers=bearer(w.agent_token)).json()
    assert t["assignee"]["id"] == w.agent_id and t["tags"] == ["android", "卡顿"]
    assert t["merged_into"] == kept and t["status"] == "closed" and t["priority"] == "P2"
    log = client.get(f"/api/v1/tickets/{dup}/events", headers=bearer(w.agent_token)).json()
    assert {e["actor"]["id"] for e in log[1:]} == {w.agent_id}
    assert [e["data"].get("reason") for e in log if e["kind"] == "priority_changed"] == ["many viewers"]
    page = client.get(f"/tickets/{dup}?lang=en")
    assert "Agent Wang" in page.text and 'data-testid="merged-into"' in page.text
    # The customer sees where it went.
    client.cookies.clear()
    assert web_login(client, "alice@liveco.test").status_code == 303
    seen = client.get(f"/tickets/{dup}?lang=en").text
    assert f'href="/tickets/{kept}"' in seen and "merged into" in seen
    assert "android" not in seen  # tags are the agents'
