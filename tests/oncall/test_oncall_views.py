"""On-call pages: who is on call, the week grid in the viewer's zone, covering a shift in two clicks."""

from __future__ import annotations

import html
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from tests.oncall.oncall_kit import admin_of, daily_rotation, sh
from tests.tenancy import build_world
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.store import person_by_email
from zhiban.oncall import service
from zhiban.web.deps import SESSION_COOKIE


def _login(client: TestClient, desk: Desk, email: str) -> None:
    """Sign in by opening a web session directly (the password form is tested in tests/web; argon2 is slow)."""
    with desk.transaction() as s:
        person = person_by_email(s, email)
        assert person is not None
        opened = identity.open_web_session(s, desk.clock, person)
    client.cookies.set(SESSION_COOKIE, opened.cookie_value)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "page has no CSRF field"
    return match.group(1)


def _field(page: str, name: str) -> str:
    match = re.search(rf'<input id="{name}" name="{name}"[^>]*value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


def test_cover_a_shift_in_two_clicks(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    _login(client, desk, "agent@vendor.test")

    overview = client.get("/oncall")
    assert overview.status_code == 200
    assert "Network primary" in overview.text and "Agent Wang" in overview.text
    assert 'href="/oncall"' in overview.text  # the nav link

    # The agent (zone UTC) views the week of Monday 16 November.
    page = client.get(f"/oncall/schedules/{oc.schedule_id}?week=2026-11-18")
    assert page.status_code == 200
    # Handoffs at 09:00 Shanghai are 01:00 UTC: Monday shows the agent from 01:00, Tuesday the handoff at 01:00.
    assert "01:00–24:00" in page.text and "00:00–01:00" in page.text
    covers = [html.unescape(m) for m in re.findall(r'<a class="oc-piece[^"]*" href="([^"]+)"', page.text)]
    assert covers, "no cover buttons"
    spans = {}
    for c in covers:
        query = parse_qs(urlsplit(c).query)
        spans[(datetime.fromisoformat(query["start"][0]), datetime.fromisoformat(query["end"][0]))] = c
    # Past turns offer no cover; the turn under way (Friday 09:00 to Saturday 09:00) is covered from now on.
    assert (sh(2026, 11, 16, 9), sh(2026, 11, 17, 9)) not in spans
    assert (desk.clock.now(), sh(2026, 11, 21, 9)) in spans
    # Saturday's turn, 21 November 09:00 to Sunday 09:00 Shanghai, is the admin's.
    link = spans[(sh(2026, 11, 21, 9), sh(2026, 11, 22, 9))]
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 12)) == [w.admin_id]

    # Click one: the form, filled with the shift's span (in the viewer's zone) and the viewer.
    form = client.get(link)
    assert form.status_code == 200
    assert _field(form.text, "start") == "2026-11-21T01:00" and _field(form.text, "end") == "2026-11-22T01:00"
    assert re.search(rf'<option value="{w.agent_id}" selected>', form.text)
    token = _csrf(form.text)
    fields = {
        "person_id": w.agent_id,
        "start": _field(form.text, "start"),
        "end": _field(form.text, "end"),
        "zone": "UTC",
    }
    # Without the session's CSRF token nothing changes.
    forged = client.post(f"/oncall/schedules/{oc.schedule_id}/override", data=fields, follow_redirects=False)
    assert forged.status_code == 403
    # Click two: submit.
    done = client.post(
        f"/oncall/schedules/{oc.schedule_id}/override", data={**fields, "csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"].startswith(f"/oncall/schedules/{oc.schedule_id}")
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 12)) == [w.agent_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 8, 59)) == [w.agent_id]  # Friday's own turn
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 22, 9)) == [w.agent_id]  # Sunday's own turn
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 23, 9)) == [w.admin_id]  # Monday: untouched
    after = client.get(done.headers["location"])
    assert "(override)" in after.text

    # A bad span re-shows the form with the reason; nothing is stored.
    bad = client.post(
        f"/oncall/schedules/{oc.schedule_id}/override",
        data={**fields, "start": "2026-11-23T05:00", "end": "2026-11-23T04:00", "csrf_token": token},
    )
    assert bad.status_code == 422 and "must end after it starts" in bad.text
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 23, 12, 30)) == [w.admin_id]


def test_part_of_a_shift_and_removing_it(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    _login(client, desk, "admin@vendor.test")
    form = client.get(f"/oncall/schedules/{oc.schedule_id}/override")
    token = _csrf(form.text)
    r = client.post(
        f"/oncall/schedules/{oc.schedule_id}/override",
        data={"person_id": w.agent_id, "start": "2026-11-21T10:00", "end": "2026-11-21T12:00", "zone": "Asia/Shanghai"},
        headers={"x-csrf-token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with desk.transaction() as s:
        # Two hours in the middle of the admin's Saturday turn go to the agent.
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 9, 59)) == [w.admin_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 10)) == [w.agent_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 12)) == [w.admin_id]
        override_id = service.upcoming_overrides(s, admin_of(w), oc.schedule_id, sh(2026, 11, 21))[0].id
    r = client.post(
        f"/oncall/schedules/{oc.schedule_id}/overrides/{override_id}/delete",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 10)) == [w.admin_id]


def test_my_on_call_page(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    daily_rotation(desk, w)
    _login(client, desk, "agent@vendor.test")
    page = client.get("/oncall/me")
    assert page.status_code == 200
    # The next 28 days from Saturday 21 November 03:00 Shanghai (Friday 19:00 UTC): the turn in force first.
    rows = re.findall(r"<td>(\d{4}-\d\d-\d\d \d\d:\d\d)</td>\s*<td>(\d{4}-\d\d-\d\d \d\d:\d\d)</td>", page.text)
    # Every other day from the Friday turn, 09:00 Shanghai being 01:00 in the agent's UTC.
    assert rows[:2] == [("2026-11-20 01:00", "2026-11-21 01:00"), ("2026-11-22 01:00", "2026-11-23 01:00")]
    assert len(rows) == 15 and rows[-1][0] == "2026-12-18 01:00" and "on call now" in page.text  # to 18 Dec 19:00
    feed = re.search(r"(http://testserver/oncall/ical/[A-Za-z0-9_-]+\.ics)", page.text)
    assert feed and client.get(feed.group(1)).status_code == 200


def test_customers_see_no_on_call_page(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    _login(client, desk, "alice@liveco.test")
    for path in (
        "/oncall",
        f"/oncall/schedules/{oc.schedule_id}",
        f"/oncall/schedules/{oc.schedule_id}/override",
        "/oncall/me",
    ):
        r = client.get(path, headers={"accept": "text/html"})
        assert r.status_code == 403 and "Network primary" not in r.text and "Agent Wang" not in r.text
    token = _csrf(client.get("/portal").text)
    r = client.post(
        f"/oncall/schedules/{oc.schedule_id}/override",
        data={"person_id": w.alice_id, "start": "2026-11-21T10:00", "end": "2026-11-21T12:00", "csrf_token": token},
    )
    assert r.status_code == 403
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 21, 11)) == [w.admin_id]
