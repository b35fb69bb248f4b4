"""The desk's pages in a real Chromium: sign in, the queue and portal at 360 px and on a desktop."""

from __future__ import annotations

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
    page.press("#password", "Enter")  # the form works from the keyboard
    page.wait_for_load_state("networkidle")


@pytest.mark.browser
@pytest.mark.parametrize("width", [360, 1280])
def test_agent_queue_fits_and_works(chromium: Any, desk_server: str, width: int) -> None:
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    _sign_in(page, desk_server, "li.na@zhiban.demo")
    assert page.url.endswith("/agent/queue")
    assert page.locator("table.list tbody tr").count() >= 5
    # Nothing wider than the screen: no sideways scrolling on a phone.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    if width == 1280:
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "screenshot-queue.png"), full_page=True)
    page.click("text=直播间大面积卡顿 cn-east")
    assert "/tickets/" in page.url
    page.fill("#reply", "We see packet loss on sh-edge-07 and are rerouting.")
    page.click("form[action$='/reply'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".comment").last.inner_text().endswith("rerouting.")
    context.close()


@pytest.mark.browser
def test_customer_portal_in_chinese(chromium: Any, desk_server: str) -> None:
    context = chromium.new_context(viewport={"width": 360, "height": 800}, locale="zh-CN")
    page = context.new_page()
    _sign_in(page, desk_server, "dev@classmate.demo")
    page.goto(desk_server + "/portal?lang=zh")
    assert "我的工单" in page.content()
    page.goto(desk_server + "/portal/new")
    page.fill("#subject", "学生端声音断断续续")
    page.fill("#body", "下午 3 点开始，安卓学生端音频卡顿，频道 class-301。")
    page.click("main button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "学生端声音断断续续" in page.content()
    context.close()
