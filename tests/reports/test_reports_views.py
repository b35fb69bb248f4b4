"""The /reports dashboard: figures with their definitions and chart data, for staff and (scoped) customers."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from tests.reports.reports_kit import build_history
from tests.tenancy import bearer
from zhiban.desk import Desk


def _chart(html: str, name: str) -> dict[str, object]:
    match = re.search(rf'<script type="application/json" id="chart-{name}">(.*?)</script>', html, re.S)
    assert match, f"no chart {name}"
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_dashboard_shows_figures_definitions_and_charts(client: TestClient, desk: Desk) -> None:
    h = build_history(desk)
    page = client.get("/reports?from=2026-10-01&to=2026-10-15&lang=en", headers=bearer(h.world.agent_token))
    assert page.status_code == 200
    html = page.text
    assert "/static/vendor/uPlot.iife.min.js" in html and "cdn" not in html.lower()
    # Each figure carries its definition next to it.
    assert "nearest rank over answered tickets" in html and "Mean time to acknowledge" in html
    fr = _chart(html, "fr")
    assert fr["series"] == [
        {"label": "p90", "values": [20.0, 30.0, 50.0]},
        {"label": "p50", "values": [20.0, 30.0, 12.0]},
    ]
    assert _chart(html, "bl")["series"] == [{"label": "tickets", "values": [0, 1, 1, 0]}]
    assert "/api/v1/reports/breaches.csv?from=2026-10-01&amp;to=2026-10-15" in html
    zh = client.get("/reports?from=2026-10-01&to=2026-10-15&lang=zh", headers=bearer(h.world.agent_token)).text
    assert "首次响应时间" in zh and "平均确认时长" in zh

    mine = client.get("/reports?from=2026-10-01&to=2026-10-15", headers=bearer(h.world.bob_token))
    assert mine.status_code == 200
    assert 'id="pages_per_person"' not in mine.text  # the vendor's on-call load is not a customer's business
    assert _chart(mine.text, "fr")["series"][1]["values"] == [None, None, 12.0]  # type: ignore[index]
    bad = client.get("/reports?from=tomorrow", headers=bearer(h.world.agent_token))
    assert bad.status_code == 200 and 'role="alert"' in bad.text
