"""The reports dashboard and the status page in a real Chromium, with screenshots kept in docs/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from zhiban.demo.seed import DEMO_PASSWORD

# One xdist worker runs every browser test: one Chromium and one desk, not two competing for the cores.
pytestmark = pytest.mark.xdist_group("browser")

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(base + "/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_load_state("networkidle")


def _api(page: Any, base: str, path: str, body: dict[str, Any]) -> Any:
    """A JSON POST with the session cookie and its CSRF token, as the page's own scripts send them."""
    token = json.loads(page.get_attribute("body", "hx-headers"))["X-CSRF-Token"]
    response = page.request.post(base + path, data=json.dumps(body),
                                 headers={"content-type": "application/json", "x-csrf-token": token})  # fmt: skip
    assert response.ok, response.text()
    return response.json()


@pytest.mark.browser
def test_reports_and_status_pages(chromium: Any, desk_server: str) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, desk_server, "admin@zhiban.demo")
    page.goto(desk_server + "/reports?lang=en")  # any of our pages carries the session's CSRF token
    # Monitoring reports an edge node in trouble: an incident opens, and an engineer posts a public update.
    _api(page, desk_server, "/api/v1/incident-services", {"name": "media edge"})
    key = _api(page, desk_server, "/api/v1/integrations", {"type": "events-v2", "service": "media edge"})["key"]
    alert = {"summary": "sh-edge-07 packet loss in cn-east", "source": "sh-edge-07", "severity": "critical"}
    trigger = {"routing_key": key, "event_action": "trigger", "dedup_key": "sh-edge-07", "payload": alert}
    _api(page, desk_server, "/v2/enqueue", trigger)
    incident = page.request.get(desk_server + "/api/v1/incidents").json()[0]["id"]
    _api(page, desk_server, f"/api/v1/status/incidents/{incident}/updates",
         {"status": "identified", "body": "Packet loss on sh-edge-07; moving viewers to sh-edge-03.",
          "title": "Packet loss in cn-east"})  # fmt: skip

    page.goto(desk_server + "/reports?lang=en")
    page.wait_for_load_state("networkidle")
    assert page.locator("section.figure").count() >= 9
    assert page.locator(".uplot canvas").count() >= 4  # the vendored chart library drew the charts
    page.locator("#first_response details.def summary").click()
    assert "nearest rank" in page.locator("#first_response details.def").inner_text()
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "screenshot-reports.png"), full_page=True)

    anonymous = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    status = anonymous.new_page()
    status.on("pageerror", lambda exc: errors.append(str(exc)))
    status.goto(desk_server + "/status?lang=en")
    # The agent's update published it under its public title, not the alert's summary.
    assert "Packet loss in cn-east" in status.locator("#current-h + article").inner_text()
    assert "moving viewers to sh-edge-03" in status.content()
    assert status.locator(".bars").count() >= 7 and status.locator(".bars span.critical").count() >= 1
    status.screenshot(path=str(DOCS / "screenshot-status.png"), full_page=True)
    phone = chromium.new_context(viewport={"width": 360, "height": 800})
    small = phone.new_page()
    small.goto(desk_server + "/status?lang=zh")
    overflow = small.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1 and "服务状态" in small.content()
    assert not errors, errors
    for ctx in (context, anonymous, phone):
        ctx.close()
