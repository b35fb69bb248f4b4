"""The schedule editor in a real Chromium: an admin makes a schedule with a rotation and sees who is on call."""

from __future__ import annotations

from typing import Any

import pytest

from zhiban.demo.seed import DEMO_PASSWORD

# One xdist worker runs every browser test: one Chromium and one desk, not two competing for the cores.
pytestmark = pytest.mark.xdist_group("browser")

PEOPLE = ("Li Na 李娜 (network)", "Sam Carter (video)")


@pytest.mark.browser
def test_admin_makes_a_schedule_and_sees_it_on_call(chromium: Any, desk_server: str) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(desk_server + "/login")
    page.fill("#email", "admin@zhiban.demo")
    page.fill("#password", DEMO_PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_load_state("networkidle")

    page.goto(desk_server + "/oncall?lang=en")  # the demo admin reads Chinese; the page's words here are English
    page.click("text=New schedule")
    page.fill("#name", "Browser nights")
    page.fill("#zone", "Asia/Shanghai")
    page.click("main form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/oncall/schedules/" in page.url

    page.click("text=Add a rotation")
    page.fill("#name", "Daily")
    page.select_option("#rotation", "daily")
    page.fill("#start_date", "2026-01-05")
    page.fill("#handoff", "09:00")
    slots = page.locator("select[name=participant]")
    slots.nth(0).select_option(label=PEOPLE[0])
    slots.nth(1).select_option(label=PEOPLE[1])
    page.click("main form.card button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "handoff at 09:00 (Asia/Shanghai)" in page.content()

    page.goto(desk_server + "/oncall")
    card = page.locator(".oc-now .card", has_text="Browser nights")
    assert card.locator(".oc-who").inner_text() in PEOPLE  # a daily rotation without windows always has someone
    context.close()
