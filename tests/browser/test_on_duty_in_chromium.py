"""On duty in a real Chromium against `zhiban serve` with the demo: a LiveCo customer (Enterprise, standby) presses
"Urgent: wake the engineer on duty" on a P3 ticket, sees that an engineer was paged; the agent follows the ticket's
on-duty panel to the incident and acknowledges; the customer then sees who acknowledged. No CSP violation."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from zhiban.demo.seed import DEMO_PASSWORD

# One xdist worker runs every browser test: one Chromium and one desk, not two competing for the cores.
pytestmark = pytest.mark.xdist_group("browser")

# Chromium's securitypolicyviolation event, collected before any page script runs.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  e => window.__csp.push(`${e.violatedDirective} ${e.blockedURI || "inline"} @${e.sourceFile}:${e.lineNumber}`));
"""
SHANGHAI = ZoneInfo("Asia/Shanghai")  # both demo people read Shanghai time


def _page(context: Any, problems: list[str]) -> Any:
    context.set_default_timeout(60_000)  # sign-in (argon2) on a box shared by several test runs
    page = context.new_page()
    page.add_init_script(WATCH)
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return page


def _settle(page: Any, problems: list[str]) -> None:
    page.wait_for_load_state("networkidle")
    problems.extend(f"{page.url}: {v}" for v in page.evaluate("window.__csp || []"))


def _sign_in(page: Any, base: str, email: str, problems: list[str]) -> None:
    page.goto(base + "/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    page.press("#password", "Enter")
    _settle(page, problems)
    assert "/login" not in page.url


def _near_now(text: str, pattern: str) -> None:
    """The time the line names is now, in Shanghai (within two minutes)."""
    match = re.search(pattern + r" (\d{4}-\d\d-\d\d \d\d:\d\d)", text)
    assert match, text
    shown = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)
    assert abs(shown - datetime.now(SHANGHAI)) < timedelta(minutes=2), text


@pytest.mark.browser
def test_the_customer_wakes_the_engineer_on_duty_and_sees_the_acknowledgement(chromium: Any, desk_server: str) -> None:
    problems: list[str] = []
    customer = chromium.new_context(viewport={"width": 360, "height": 800})
    page = _page(customer, problems)
    _sign_in(page, desk_server, "dev@liveco.demo", problems)
    page.goto(desk_server + "/portal/new?lang=en")
    page.fill("#subject", "All live rooms freeze after token renewal")
    page.select_option("#priority", "P3")
    page.fill("#body", "Since 5 minutes every room in cn-east freezes after renewToken.")
    page.click("main button[type=submit]")
    _settle(page, problems)
    ticket_url = page.url
    assert re.search(r"/tickets/\d+$", ticket_url), ticket_url
    assert page.locator("#on-duty").count() == 0  # a P3 on standby pages nobody by itself

    # The urgent action is loaded by htmx from duty; pressing it pages and comes back to the ticket.
    button = page.locator("button.urgent")
    button.wait_for(timeout=15_000)
    assert button.inner_text() == "Urgent: wake the engineer on duty"
    page.fill("#urgent-note", "every room freezes")
    button.click()
    _settle(page, problems)
    assert page.url.startswith(ticket_url)
    paged = page.locator("#on-duty").inner_text()
    _near_now(paged, "An engineer on duty was paged at")
    assert "Acknowledged by" not in paged
    assert page.locator("button.urgent").count() == 0  # paging now: nothing more to ask

    # The agent sees the on-duty panel, follows it to the incident, which links back, and acknowledges.
    agent = chromium.new_context(viewport={"width": 1280, "height": 900})
    desk_page = _page(agent, problems)
    _sign_in(desk_page, desk_server, "li.na@zhiban.demo", problems)
    desk_page.goto(ticket_url + "?lang=en")
    _settle(desk_page, problems)
    panel = desk_page.locator("#on-duty")
    assert "Engineer on duty · the customer asked: urgent" in panel.inner_text()
    panel.locator("a[href^='/incidents/']").click()
    _settle(desk_page, problems)
    ticket_path = ticket_url.removeprefix(desk_server)
    assert desk_page.locator(f"main a[href='{ticket_path}']").count() == 1
    desk_page.click("form[action$='/acknowledge'] button[type=submit]")
    _settle(desk_page, problems)

    page.reload()
    _settle(page, problems)
    acknowledged = page.locator("#on-duty").inner_text()
    _near_now(acknowledged, r"Acknowledged by Li Na 李娜 \(network\) at")
    customer.close()
    agent.close()
    assert not problems, problems
