"""The telemetry query API on SQLite and PostgreSQL: values against the reports sent, tenancy, bounded input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.telemetry.dashboard_kit import (
    EAST_FREEZE_MS,
    NORTH_FREEZE_MS,
    START,
    T0,
    TelemetryWorld,
    build_telemetry_world,
    iso,
)
from tests.tenancy import World, bearer
from zhiban.desk import Desk

END = START + timedelta(minutes=3)


@pytest.fixture
def tw(desk: Desk) -> TelemetryWorld:
    return build_telemetry_world(desk)


def get(client: TestClient, token: str, path: str, **params: object) -> dict:
    response = client.get(path, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def test_series_matches_the_reports_at_every_step(client: TestClient, tw: TelemetryWorld) -> None:
    token = tw.world.alice_token
    fine = get(
        client,
        token,
        "/api/v1/apps/liveco/series",
        metric="video_freeze_rate",
        **{"from": iso(START)},
        to=iso(END),
        step=10,
    )
    assert fine["step"] == 10 and len(fine["points"]) == 18
    both = (3 * EAST_FREEZE_MS + 3 * NORTH_FREEZE_MS) / (6 * 10000)
    assert all(p["value"] == pytest.approx(both) and p["sessions"] == 6 and p["reports"] == 6 for p in fine["points"])
    assert fine["points"][0]["start"] == iso(START)
    # A minute step merges six 10 s windows: still 6 distinct sessions (not 36), 36 reports.
    minute = get(
        client, token, "/api/v1/apps/liveco/series", metric="sessions", **{"from": iso(START)}, to=iso(END), step=60
    )
    assert [(p["value"], p["reports"]) for p in minute["points"]] == [(6.0, 36)] * 3
    east = get(
        client,
        token,
        "/api/v1/apps/liveco/series",
        metric="video_freeze_rate",
        **{"from": iso(START)},
        to=iso(END),
        step=180,
        dimension="region",
        value="cn-east",
    )
    assert [p["value"] for p in east["points"]] == [pytest.approx(EAST_FREEZE_MS / 10000)]
    # Epoch milliseconds work as well as RFC 3339; an empty stretch gives points without a value.
    later = get(
        client,
        token,
        "/api/v1/apps/liveco/series",
        metric="mos",
        **{"from": str(int(END.timestamp() * 1000))},
        to=str(int((END + timedelta(minutes=1)).timestamp() * 1000)),
        step=30,
    )
    assert [p["value"] for p in later["points"]] == [None, None]


def test_series_picks_a_step_and_defaults_to_the_last_hour(client: TestClient, tw: TelemetryWorld) -> None:
    body = get(client, tw.world.agent_token, "/api/v1/apps/liveco/series", metric="reports")
    # The desk's clock is T0: the last hour at 10 s steps, with our 18 windows at its end.
    assert body["to"] == iso(T0) and body["from"] == iso(T0 - timedelta(hours=1)) and body["step"] == 10
    assert sum(p["value"] or 0 for p in body["points"]) == len(tw.sent)
    week = get(
        client,
        tw.world.agent_token,
        "/api/v1/apps/liveco/series",
        metric="reports",
        **{"from": iso(T0 - timedelta(days=7))},
        to=iso(T0),
    )
    assert week["step"] == 3600 and len(week["points"]) == 168
    assert sum(p["value"] or 0 for p in week["points"]) == len(tw.sent)


def test_breakdown_puts_the_slice_that_hurts_first(client: TestClient, tw: TelemetryWorld) -> None:
    body = get(
        client,
        tw.world.alice_token,
        "/api/v1/apps/liveco/breakdown",
        metric="video_freeze_rate",
        dimension="isp",
        **{"from": iso(START)},
        to=iso(END),
    )
    rows = body["rows"]
    assert [r["value"] for r in rows] == ["china-mobile", "china-unicom"]
    overall = (EAST_FREEZE_MS + NORTH_FREEZE_MS) / 20000
    assert rows[0]["metric"] == pytest.approx(EAST_FREEZE_MS / 10000) and rows[0]["baseline"] == pytest.approx(overall)
    # impact = sessions × relative excess over the app.
    assert rows[0]["impact"] == pytest.approx(3 * (EAST_FREEZE_MS / 10000 - overall) / overall)
    assert rows[1]["impact"] == 0 and rows[1]["sessions"] == 3
    limited = get(
        client,
        tw.world.alice_token,
        "/api/v1/apps/liveco/breakdown",
        metric="mos",
        dimension="isp",
        limit=1,
        **{"from": iso(START)},
        to=iso(END),
    )
    assert len(limited["rows"]) == 1 and limited["total"] == 2


def test_session_timeline_has_reports_and_events_in_order(client: TestClient, tw: TelemetryWorld) -> None:
    body = get(client, tw.world.alice_token, "/api/v1/apps/liveco/sessions/s0", **{"from": iso(START)}, to=iso(END))
    assert len(body["reports"]) == 18 and body["truncated"] is False
    assert [r["ts"] for r in body["reports"]] == sorted(r["ts"] for r in body["reports"])
    assert [e["type"] for e in body["events"]] == ["join", "join", "first_frame", "reconnect"]
    assert body["events"][0]["ok"] is False and body["events"][0]["error_code"] == 17
    assert body["events"][3]["ts"] == int((START + timedelta(seconds=52)).timestamp() * 1000)
    assert get(client, tw.world.alice_token, "/api/v1/apps/liveco/sessions/nobody")["reports"] == []


def test_summary_overall_and_worst_slices(client: TestClient, tw: TelemetryWorld) -> None:
    body = get(client, tw.world.agent_token, "/api/v1/apps/liveco/summary", **{"from": iso(START)}, to=iso(END))
    assert body["overall"]["sessions"] == 6
    assert body["overall"]["video_freeze_rate"] == pytest.approx((EAST_FREEZE_MS + NORTH_FREEZE_MS) / 20000)
    assert body["worst"] and body["worst"][0]["slice"] in ({"region": "cn-east"}, {"isp": "china-mobile"})
    # Filtered by session it reads the raw reports of that session only.
    one = get(
        client,
        tw.world.agent_token,
        "/api/v1/apps/liveco/summary",
        session_id="s4",
        **{"from": iso(START)},
        to=iso(END),
    )
    assert one["overall"]["video_freeze_rate"] == pytest.approx(NORTH_FREEZE_MS / 10000)
    assert one["overall"]["join_success_rate"] is None  # s4 never joined in these reports: not measured, not 0


ROUTES = [
    "/api/v1/apps/{app}/series?metric=mos",
    "/api/v1/apps/{app}/breakdown?metric=mos&dimension=region",
    "/api/v1/apps/{app}/sessions/s0",
    "/api/v1/apps/{app}/summary",
]


def test_customers_see_their_own_apps_only(client: TestClient, tw: TelemetryWorld) -> None:
    w = tw.world
    for route in ROUTES:
        check_tenancy(client, w, route)


def check_tenancy(client: TestClient, w: World, route: str) -> None:
    theirs = client.get(route.format(app="liveco"), headers=bearer(w.bob_token))
    assert theirs.status_code == 404 and theirs.headers["content-type"] == "application/problem+json"
    assert "room-8812" not in theirs.text
    # The same answer as for an app that does not exist: nothing to learn from probing.
    missing = client.get(route.format(app="no-such-app"), headers=bearer(w.bob_token))
    assert missing.status_code == 404 and missing.json()["detail"] == theirs.json()["detail"]
    assert client.get(route.format(app="classmate-app"), headers=bearer(w.bob_token)).status_code == 200
    assert client.get(route.format(app="liveco"), headers=bearer(w.agent_token)).status_code == 200
    assert client.get(route.format(app="liveco")).status_code == 401


BAD_INPUT = [
    ("series?metric=mos&from=2026-11-20T19:00:00Z&to=2026-11-20T18:00:00Z", "from must be before to"),
    ("series?metric=mos&from=2025-09-01T00:00:00Z&to=2026-11-20T19:00:00Z", "at most 400 days"),
    ("series?metric=mos&from=2026-11-20T18:00:00&to=2026-11-20T19:00:00Z", "needs a time zone"),
    ("series?metric=mos&from=yesterday", "RFC 3339"),
    ("series?metric=mos&from=1970-01-01T00:00:00Z", "out of range"),
    ("series?metric=mos&step=15", "multiple of 10"),
    ("series?metric=mos&step=5", "step"),
    ("series?metric=mos&from=2026-10-20T19:00:00Z&step=10", "at most 2000 points"),
    ("series?metric=happiness", "unknown metric"),
    ("series?metric=mos&dimension=region", "both dimension and value"),
    ("series?metric=mos&dimension=planet&value=mars", "unknown dimension"),
    ("breakdown?metric=mos&dimension=planet", "unknown dimension"),
    ("breakdown?metric=mos&dimension=region&from=2026-09-01T00:00:00Z", "at most 31 days"),
    ("breakdown?metric=mos&dimension=region&limit=100000", "limit"),
    ("summary?from=2026-11-01T00:00:00Z", "at most 7 days"),
    ("summary?channel=room-8812&from=2026-11-15T00:00:00Z", "at most 2 days"),
    ("sessions/s0?from=2026-11-15T00:00:00Z", "at most 2 days"),
    # PostgreSQL text cannot hold NUL: refused at the edge, not a 500 from the database.
    ("series?metric=mos&dimension=region&value=a%00b", "value"),
    ("summary?channel=%00", "channel"),
]


def test_bad_input_is_problem_json(client: TestClient, tw: TelemetryWorld) -> None:
    for query, says in BAD_INPUT:
        response = client.get(f"/api/v1/apps/liveco/{query}", headers=bearer(tw.world.alice_token))
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/invalid-input") and says in problem["detail"], (query, problem)
