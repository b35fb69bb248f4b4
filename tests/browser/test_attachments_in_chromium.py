"""Attachments in a real Chromium: a customer attaches files in the portal, the agent downloads them from the ticket
page; an HTML file is only ever a download, never a page of the desk's origin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from zhiban.demo.seed import DEMO_PASSWORD

pytestmark = pytest.mark.xdist_group("browser")

DUMP = '{"PeerConnections": {"12-1": {"stats": {}}}, "UserAgent": "Chrome/131"}'
HTML = "<html><body><script>document.title='ran'</script>owned</body></html>"


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(base + "/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_load_state("networkidle")


@pytest.mark.browser
def test_customer_attaches_in_the_portal_and_the_agent_downloads(
    chromium: Any, desk_server: str, tmp_path: Path
) -> None:
    dump = tmp_path / "webrtc_internals_dump.txt"
    dump.write_text(DUMP)
    page_file = tmp_path / "report.html"
    page_file.write_text(HTML)

    customer = chromium.new_context(viewport={"width": 360, "height": 800})
    page = customer.new_page()
    _sign_in(page, desk_server, "dev@classmate.demo")
    page.goto(desk_server + "/portal/new")
    page.fill("#subject", "Echo in class-301 since 15:00")
    page.fill("#body", "Teachers hear themselves; the webrtc-internals dump is attached.")
    page.set_input_files("#new-files", str(dump))
    page.click("main form button[type=submit]")
    page.wait_for_load_state("networkidle")
    ticket_url = page.url
    assert re.search(r"/tickets/\d+$", ticket_url)
    assert page.locator(".comment").first.locator("ul.attachments a").all_inner_texts() == [dump.name]
    page.fill("#reply", "And our report.")
    page.set_input_files("#reply-files", str(page_file))
    page.click("form[action$='/reply'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".comment").last.locator("ul.attachments a").all_inner_texts() == ["report.html"]
    customer.close()

    agent = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = agent.new_page()
    _sign_in(page, desk_server, "li.na@zhiban.demo")
    page.goto(ticket_url)
    with page.expect_download() as got:
        page.click("ul.attachments a:text('webrtc_internals_dump.txt')")
    download = got.value
    assert download.suggested_filename == "webrtc_internals_dump.txt"
    assert Path(download.path()).read_text() == DUMP

    # The HTML file is a download even when opened directly: it never renders on the desk's origin.
    href = page.locator("ul.attachments a:text('report.html')").get_attribute("href")
    with page.expect_download() as got:
        try:
            page.goto(desk_server + href)
        except Exception as exc:  # Chromium aborts a navigation that turns into a download
            assert "Download is starting" in str(exc) or "net::ERR_ABORTED" in str(exc), exc
    assert got.value.suggested_filename == "report.html"
    assert Path(got.value.path()).read_text() == HTML
    assert page.url == ticket_url and page.title() != "ran"
    agent.close()
