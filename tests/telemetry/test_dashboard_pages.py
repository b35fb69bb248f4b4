"""Telemetry pages: app list, dashboard, session inspector and ticket diagnostics, per tenant and language."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.telemetry.dashboard_kit import (
    EAST_FREEZE_MS,
    NORTH_FREEZE_MS,
    START,
    TelemetryWorld,
    build_telemetry_world,
    iso,
    quality_report,
)
from tests.tenancy import bearer
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.telemetry.diagnostics import diagnostics_window, ticket_diagnostics

HTML = {"accept": "text/html"}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Pages render the same on both databases: SQLite only (the API tests cover PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'zhiban.db'}"


@pytest.fixture
def tw(desk: Desk) -> TelemetryWorld:
    return build_telemetry_world(desk)


def page(client: TestClient, token: str, path: str) -> str:
    response = client.get(path, headers={**HTML, **bearer(token)})
    assert response.status_code == 200, response.text[:500]
    return response.text


def test_app_list_shows_only_the_viewers_apps(client: TestClient, tw: TelemetryWorld) -> None:
    mine = page(client, tw.world.alice_token, "/telemetry")
    assert 'href="/telemetry/apps/liveco"' in mine and "classmate-app" not in mine
    everything = page(client, tw.world.agent_token, "/telemetry")
    assert 'href="/telemetry/apps/liveco"' in everything and 'href="/telemetry/apps/classmate-app"' in everything
    # The one nav link is there for customers and staff.
    assert 'href="/telemetry"' in mine and 'href="/telemetry"' in everything


def test_dashboard_page_carries_its_charts_and_config(client: TestClient, tw: TelemetryWorld) -> None:
    html = page(client, tw.world.alice_token, "/telemetry/apps/liveco?lang=en")
    config = json.loads(re.search(r'id="telemetry-config">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert config["app_id"] == "liveco"
    assert [c["metric"] for c in config["charts"]] == [
        "sessions",
        "join_success_rate",
        "video_freeze_rate",
        "audio_freeze_rate",
        "e2e_delay_p95_ms",
        "mos",
    ]
    assert [r["seconds"] for r in config["ranges"]] == [3600, 86400, 604800]
    for chart in config["charts"]:
        assert f'data-metric="{chart["metric"]}"' in html
    assert "/static/vendor/uPlot.iife.min.js" in html and "/static/telemetry/dashboard.js" in html
    zh = page(client, tw.world.alice_token, "/telemetry/apps/liveco?lang=zh")
    assert "视频卡顿率" in zh and "维度拆解" in zh
    # Another tenant's dashboard is not found, as a page.
    other = client.get("/telemetry/apps/liveco", headers={**HTML, **bearer(tw.world.bob_token)})
    assert other.status_code == 404 and "LiveCo Live" not in other.text


def test_static_assets_are_served(client: TestClient) -> None:
    for path in (
        "/static/telemetry/dashboard.js",
        "/static/telemetry/format.js",
        "/static/telemetry/session.js",
        "/static/telemetry/telemetry.css",
        "/static/telemetry/webrtc-loopback.html",
        "/static/telemetry/webrtc-loopback.js",
        "/static/vendor/uPlot.iife.min.js",
    ):
        assert client.get(path).status_code == 200, path


def test_session_inspector_in_the_viewers_zone(client: TestClient, desk: Desk, tw: TelemetryWorld) -> None:
    with desk.transaction() as s:
        person = identity.create_person(
            s,
            desk.clock,
            email="li@liveco.test",
            name="Li",
            role=Role.CUSTOMER,
            organization_id=tw.world.liveco,
            timezone="Asia/Shanghai",
        )
        token = identity.create_token(s, desk.clock, person_id=person.id, name="t").plain
    html = page(client, token, "/telemetry/apps/liveco/sessions/s0?lang=en")
    # 18:57:02 UTC is 02:57:02 in Shanghai.
    first_at = START + timedelta(seconds=2)
    assert first_at.strftime("%H:%M:%S") == "18:57:02" and "11-21 02:57:02" in html
    assert html.count("<tr") == 1 + 18  # header + one row per report
    assert "join failed" in html and "17" in html and "first frame 400 ms" in html and "reconnect" in html
    assert f"freeze {EAST_FREEZE_MS} ms" in html
    north = page(client, token, "/telemetry/apps/liveco/sessions/s4?lang=en")
    assert f"freeze {NORTH_FREEZE_MS} ms" in north and "join" not in north.split("<tbody>")[1]
    assert "No reports" in page(client, token, "/telemetry/apps/liveco/sessions/nobody?lang=en")
    # The form on the dashboard lands here, with the id escaped.
    moved = client.get("/telemetry/apps/liveco/session?id=a/b c", headers=bearer(token), follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/telemetry/apps/liveco/sessions/a%2Fb%20c"
    assert (
        client.get("/telemetry/apps/liveco/sessions/s0", headers={**HTML, **bearer(tw.world.bob_token)}).status_code
        == 404
    )


def test_ticket_diagnostics_for_agents(client: TestClient, desk: Desk, tw: TelemetryWorld) -> None:
    w = tw.world
    ticket = client.post(
        "/api/v1/tickets", json={"subject": "卡顿", "body": "viewers freeze"}, headers=bearer(w.alice_token)
    ).json()["id"]
    with desk.transaction() as s:
        found = ticket_diagnostics(s, ticket, now=desk.clock.now())
    # Filed at the desk's T0: one hour back, up to now (the hour after has not happened yet).
    assert found["from"] == (desk.clock.now() - timedelta(hours=1)).isoformat()
    [app] = found["apps"]
    assert app["app_id"] == "liveco" and app["overall"]["sessions"] == 6
    assert app["worst"][0]["slice"] in ({"region": "cn-east"}, {"isp": "china-mobile"})
    assert app["worst"][0]["metric"] in ("video_freeze_rate", "e2e_delay_p95_ms")
    html = page(client, w.agent_token, f"/agent/telemetry/tickets/{ticket}?lang=en")
    assert "Slices that hurt most" in html and "cn-east" in html and "china-mobile" in html
    # The customer sees neither the partial nor its placeholder on the ticket page.
    assert client.get(f"/agent/telemetry/tickets/{ticket}", headers=bearer(w.alice_token)).status_code == 403
    hook = f'hx-get="/agent/telemetry/tickets/{ticket}"'
    assert hook in page(client, w.agent_token, f"/tickets/{ticket}")
    assert hook not in page(client, w.alice_token, f"/tickets/{ticket}")


def test_diagnostics_window_is_bounded_by_now() -> None:
    from datetime import UTC, datetime

    filed = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
    assert diagnostics_window(filed) == (filed - timedelta(hours=1), filed + timedelta(hours=1))
    assert diagnostics_window(filed, filed + timedelta(minutes=20))[1] == filed + timedelta(minutes=20)
    assert diagnostics_window(filed, filed + timedelta(days=1))[1] == filed + timedelta(hours=1)
    assert diagnostics_window(filed, filed)[1] > filed  # never an empty range


def test_ticket_diagnostics_follow_the_tickets_channel_and_time(
    client: TestClient, desk: Desk, tw: TelemetryWorld
) -> None:
    """With RTC fields, the diagnostics look at that channel around when it happened, not the hour of filing."""
    w = tw.world
    earlier = START - timedelta(hours=3)
    other_room = [
        quality_report(f"x{i}", earlier + timedelta(seconds=10 * k), "cn-east", channel="room-7", user_id=f"u{i}")
        for k in range(6)
        for i in range(2)
    ]
    result = tw.runtime.ingestor.ingest_reports("liveco", other_room)
    assert result.accepted == len(other_room)
    tw.runtime.drain(flush=True)
    fields = {"app_id": "liveco", "channel_name": "room-7", "occurred_at": iso(earlier + timedelta(minutes=5))}
    ticket = client.post(
        "/api/v1/tickets",
        json={"subject": "卡顿 in room-7", "body": "freezes", "fields": fields},
        headers=bearer(w.alice_token),
    ).json()["id"]
    with desk.transaction() as s:
        found = ticket_diagnostics(s, ticket, now=desk.clock.now())
    assert found["anchor"] == "occurred" and found["channel_name"] == "room-7"
    assert found["from"] == (earlier + timedelta(minutes=5) - timedelta(hours=1)).isoformat()
    [app] = found["apps"]
    assert sorted(x["session_id"] for x in app["sessions"]) == ["x0", "x1"]  # room-7's, not room-8812's s0–s5
    assert {x["reports"] for x in app["sessions"]} == {6}
    assert app["overall"]["sessions"] == 2
    html = page(client, w.agent_token, f"/agent/telemetry/tickets/{ticket}?lang=en")
    assert "Channel room-7" in html and 'href="/telemetry/apps/liveco/sessions/x0"' in html
    assert "around when it happened" in html
    # The hour around filing, in room-8812: the six sessions of the demo traffic.
    now_ticket = client.post(
        "/api/v1/tickets",
        json={"subject": "room-8812", "body": "b", "fields": {"channel_name": "room-8812"}},
        headers=bearer(w.alice_token),
    ).json()["id"]
    with desk.transaction() as s:
        found = ticket_diagnostics(s, now_ticket, now=desk.clock.now())
    assert found["anchor"] == "created"
    assert sorted(x["session_id"] for x in found["apps"][0]["sessions"]) == [f"s{i}" for i in range(6)]
