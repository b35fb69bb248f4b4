"""The quality dashboard in Chromium with the live demo traffic: charts drawn, breakdown, zoom, 360 px; screenshots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser_fixtures import wait_until
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


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 360])
def test_dashboard_with_live_demo_data(chromium: Any, desk_server: str, width: int) -> None:
    context = chromium.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    page = context.new_page()
    _sign_in(page, desk_server, "li.na@zhiban.demo")
    answers: list[dict[str, Any]] = []
    page.on(
        "response",
        lambda r: answers.append(r.json()) if "/series?" in r.url and r.status == 200 else None,
    )
    page.goto(desk_server + "/telemetry")
    assert page.locator("a[href^='/telemetry/apps/']").count() == 3  # the agent sees every demo app
    # The demo app with the most data so far (the simulator's apps start at different paces).
    # A desk that just started has no closed windows yet (they close 30 s behind the traffic): wait for some.
    deadline = time.monotonic() + 120
    while True:
        app_id, most = page.evaluate(
            """async () => {
              const apps = await (await fetch('/api/v1/apps')).json();
              let best = null, most = -1;
              for (const a of apps) {
                const s = await (await fetch(`/api/v1/apps/${a.app_id}/series?metric=reports`)).json();
                const n = s.points.filter(p => p.value !== null).length;
                if (n > most) { most = n; best = a.app_id; }
              }
              return [best, most];
            }"""
        )
        if most >= 6 or time.monotonic() > deadline:
            break
        time.sleep(2)
    answers.clear()
    page.click(f"a[href='/telemetry/apps/{app_id}']")
    page.wait_for_selector(".tm-plot")
    # Every chart is drawn or says it has no data; the simulator starts five minutes back, so most have data.
    wait_until(
        page,
        "[...document.querySelectorAll('.tm-plot')].every(el => el.querySelector('canvas, .tm-empty'))",
        timeout=60_000,
    )
    drawn = page.locator(".tm-plot canvas").count()
    assert drawn >= 5, page.locator(".tm-plot .tm-empty").all_inner_texts()
    page.wait_for_selector("#tm-breakdown-rows tr td strong", timeout=30_000)
    assert page.locator("#tm-breakdown-rows tr").count() >= 2
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    assert "视频卡顿率" in page.content()
    DOCS.mkdir(exist_ok=True)
    name = "screenshot-telemetry-dashboard" + ("-360" if width == 360 else "")
    page.wait_for_timeout(500)
    page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)
    first_steps = {a["step"] for a in answers}
    assert first_steps == {10}  # the last hour at 10 s

    # 24 h: a coarser step; then drag across the sessions chart to zoom back in at a finer step.
    page.click("[data-range='86400']")
    wait_until(page, "document.getElementById('tm-span').textContent.length > 0")
    page.wait_for_timeout(1500)
    assert any(a["step"] == 300 for a in answers)
    answers.clear()
    box = page.locator(".tm-plot[data-metric='sessions'] .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.90, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.99, y, steps=8)
    page.mouse.up()
    page.wait_for_selector("#tm-reset:not([hidden])")
    page.wait_for_timeout(1500)
    zoomed = [a for a in answers if a["metric"] == "sessions"]
    assert zoomed and zoomed[-1]["step"] < 300, [a["step"] for a in zoomed]
    if width == 1280:
        # The agent's ticket page loads the call-quality diagnostics of the customer's apps.
        page.goto(desk_server + "/agent/queue?lang=en")
        page.click("text=直播间大面积卡顿 cn-east")
        page.wait_for_selector("section .tm-diag-app", timeout=30_000)
        assert "Call quality around this ticket" in page.content()
        page.locator("section:has(.tm-diag-app)").screenshot(path=str(DOCS / "screenshot-telemetry-ticket.png"))
    context.close()
