"""Schedule editor pages: admins create schedules and rotations in the browser; what they save is what pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.oncall.oncall_kit import admin_of, daily_rotation, sh
from tests.oncall.test_oncall_views import _csrf, _login
from tests.tenancy import World, build_world
from zhiban.desk import Desk
from zhiban.incidents import service as incidents
from zhiban.oncall import service


def _schedules(desk: Desk, w: World) -> dict[str, Any]:
    with desk.transaction() as s:
        return {r.name: (r.id, r.zone, r.owner_id) for r in service.list_schedules(s, admin_of(w))}


def _layers(desk: Desk, w: World, schedule_id: str) -> list[dict[str, Any]]:
    with desk.transaction() as s:
        return [
            {
                "id": x.id,
                "name": x.name,
                "participants": list(x.participants),
                "start": x.rotation_start,
                "turn": (x.turn_length, x.turn_unit),
                "restrictions": list(x.restrictions),
                "zone": x.zone,
                "end": x.end,
            }
            for x in service.layers(s, admin_of(w), schedule_id)
        ]


def _layer_form(w: World, token: str, **changes: Any) -> dict[str, Any]:
    """A weekly rotation from Monday 16 November 09:00, agent then admin, weeknights 18:00-09:00 only."""
    data: dict[str, Any] = {
        "csrf_token": token,
        "name": "Weeknights",
        "rotation": "weekly",
        "every": "1",
        "start_date": "2026-11-16",
        "handoff": "09:00",
        "zone": "",
        "end": "",
        "participant": [w.agent_id, w.admin_id, ""],
        "r0_kind": "daily",
        "r0_start": "18:00",
        "r0_end": "09:00",
        "r0_day": ["0", "1", "2", "3", "4"],
        "r0_from_day": "0",
        "r0_to_day": "0",
        "r1_kind": "",
        "r1_start": "",
        "r1_end": "",
        "r1_day": ["0", "1", "2", "3", "4", "5", "6"],
        "r1_from_day": "0",
        "r1_to_day": "0",
    }
    data.update(changes)
    return data


def test_admin_creates_a_schedule_with_a_rotation(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    _login(client, desk, "admin@vendor.test")
    overview = client.get("/oncall")
    assert 'href="/oncall/schedules/new"' in overview.text and 'href="/oncall/policies"' in overview.text
    form = client.get("/oncall/schedules/new")
    assert form.status_code == 200 and 'list="zones"' in form.text
    token = _csrf(form.text)
    fields = {"name": "Network primary", "zone": "Asia/Shanghai", "owner_id": w.admin_id}

    # No CSRF token: refused, nothing made.
    assert client.post("/oncall/schedules/new", data=fields, follow_redirects=False).status_code == 403
    # A zone that does not exist: the form again, with the reason and the typed values; nothing made.
    bad = client.post("/oncall/schedules/new", data={**fields, "zone": "Asia/Atlantis", "csrf_token": token})
    assert bad.status_code == 422 and "unknown time zone" in bad.text and 'value="Network primary"' in bad.text
    assert _schedules(desk, w) == {}

    made = client.post("/oncall/schedules/new", data={**fields, "csrf_token": token}, follow_redirects=False)
    assert made.status_code == 303
    schedule_id, zone, owner = _schedules(desk, w)["Network primary"]
    assert made.headers["location"] == f"/oncall/schedules/{schedule_id}" and (zone, owner) == (
        "Asia/Shanghai",
        w.admin_id,
    )
    # The same name twice is refused with a reason.
    again = client.post("/oncall/schedules/new", data={**fields, "csrf_token": token})
    assert again.status_code == 409
    assert "exists" in again.text and len(_schedules(desk, w)) == 1

    new_layer = client.get(f"/oncall/schedules/{schedule_id}/layers/new")
    assert new_layer.status_code == 200 and 'value="2026-11-21"' in new_layer.text  # today in Shanghai
    # No participant: refused, no layer.
    empty = client.post(f"/oncall/schedules/{schedule_id}/layers/new", data=_layer_form(w, token, participant=["", ""]))
    assert empty.status_code == 422 and "participants" in empty.text and _layers(desk, w, schedule_id) == []
    # A customer in the rotation: refused, no layer.
    customer = client.post(
        f"/oncall/schedules/{schedule_id}/layers/new", data=_layer_form(w, token, participant=[w.alice_id])
    )
    assert customer.status_code == 422 and "not active agents or admins" in customer.text
    assert _layers(desk, w, schedule_id) == []
    # A bad handoff time: refused with the reason.
    late = client.post(f"/oncall/schedules/{schedule_id}/layers/new", data=_layer_form(w, token, handoff="25:00"))
    assert late.status_code == 422 and "handoff time" in late.text and _layers(desk, w, schedule_id) == []

    added = client.post(
        f"/oncall/schedules/{schedule_id}/layers/new", data=_layer_form(w, token), follow_redirects=False
    )
    assert added.status_code == 303
    [layer] = _layers(desk, w, schedule_id)
    assert layer["name"] == "Weeknights" and layer["participants"] == [w.agent_id, w.admin_id]
    assert layer["start"] == sh(2026, 11, 16, 9) and layer["turn"] == (7, "day") and layer["zone"] is None
    assert layer["restrictions"] == [{"kind": "daily", "start": "18:00", "end": "09:00", "weekdays": [0, 1, 2, 3, 4]}]
    with desk.transaction() as s:
        # Monday night is the agent's, Monday noon nobody's (outside the window), the next week the admin's.
        assert service.on_call_now(s, schedule_id, sh(2026, 11, 16, 20)) == [w.agent_id]
        assert service.on_call_now(s, schedule_id, sh(2026, 11, 16, 12)) == []
        assert service.on_call_now(s, schedule_id, sh(2026, 11, 21, 12)) == []  # Saturday
        assert service.on_call_now(s, schedule_id, sh(2026, 11, 23, 20)) == [w.admin_id]

    # The schedule page: the rotation described, and the final shifts of the week (admin's zone is UTC).
    page = client.get(f"/oncall/schedules/{schedule_id}?week=2026-11-23")
    assert "Weeknights" in page.text and "handoff at 09:00 (Asia/Shanghai)" in page.text
    assert "Mon, Tue, Wed, Thu, Fri 18:00–09:00" in page.text
    assert "10:00–24:00" in page.text  # 18:00 Shanghai is 10:00 UTC
    assert "Admin" in page.text
    # And on the overview: the agent now (Friday night's window, to Saturday 09:00 Shanghai), then the admin's
    # first weeknight (Monday 23 November 18:00 Shanghai).
    overview = client.get("/oncall")
    assert "Network primary" in overview.text and "until 2026-11-21 01:00" in overview.text
    assert "Admin · 2026-11-23 10:00" in overview.text


def test_admin_edits_and_removes_a_rotation(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w, restrictions=({"kind": "weekly", "start_weekday": 4, "start": "18:00",
                                                "end_weekday": 0, "end": "09:00"},))  # fmt: skip
    _login(client, desk, "admin@vendor.test")
    [before] = _layers(desk, w, oc.schedule_id)
    form = client.get(f"/oncall/schedules/{oc.schedule_id}/layers/{before['id']}")
    assert form.status_code == 200
    token = _csrf(form.text)
    # The form shows the rotation as stored: daily turns from 16 November 09:00 Shanghai, agent first.
    assert 'value="2026-11-16"' in form.text and 'value="09:00"' in form.text
    assert re.search(r'<option value="daily" selected>', form.text)
    picked = re.findall(r'<option value="([0-9a-f]+)" selected>', form.text)
    assert picked[:2] == [w.agent_id, w.admin_id]
    assert re.search(r'name="r0_kind".*?<option value="weekly" selected>', form.text, re.S)
    assert re.search(r'name="r0_from_day".*?<option value="4" selected>', form.text, re.S)

    # Every 12 hours, the admin first, no restriction.
    data = _layer_form(
        w,
        token,
        name="Twelve hours",
        rotation="hours",
        every="12",
        start_date="2026-11-20",
        participant=[w.admin_id, w.agent_id],
        r0_kind="",
    )
    bad = client.post(f"/oncall/schedules/{oc.schedule_id}/layers/{before['id']}", data={**data, "every": "200"})
    assert bad.status_code == 422 and "turn_length" in bad.text
    assert _layers(desk, w, oc.schedule_id) == [before]
    saved = client.post(f"/oncall/schedules/{oc.schedule_id}/layers/{before['id']}", data=data, follow_redirects=False)
    assert saved.status_code == 303
    [after] = _layers(desk, w, oc.schedule_id)
    assert after["id"] == before["id"] and after["turn"] == (12, "hour") and after["restrictions"] == []
    with desk.transaction() as s:
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 20, 10)) == [w.admin_id]
        assert service.on_call_now(s, oc.schedule_id, sh(2026, 11, 20, 22)) == [w.agent_id]

    # Removing needs the CSRF token too.
    path = f"/oncall/schedules/{oc.schedule_id}/layers/{before['id']}/delete"
    assert client.post(path, follow_redirects=False).status_code == 403
    assert len(_layers(desk, w, oc.schedule_id)) == 1
    assert client.post(path, data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert _layers(desk, w, oc.schedule_id) == []


def test_schedule_settings_and_delete(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    _login(client, desk, "admin@vendor.test")
    form = client.get(f"/oncall/schedules/{oc.schedule_id}/settings")
    token = _csrf(form.text)
    path = f"/oncall/schedules/{oc.schedule_id}/settings"
    # A customer as owner is refused; nothing changes (not even the name typed with it).
    bad = client.post(path, data={"csrf_token": token, "name": "Renamed", "zone": "UTC", "owner_id": w.alice_id})
    assert bad.status_code == 422 and "not active agents or admins" in bad.text
    assert _schedules(desk, w) == {"Network primary": (oc.schedule_id, "Asia/Shanghai", w.admin_id)}
    ok = client.post(
        path,
        data={"csrf_token": token, "name": "Network", "zone": "Europe/Berlin", "owner_id": ""},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert _schedules(desk, w) == {"Network": (oc.schedule_id, "Europe/Berlin", None)}

    # A policy pages this schedule: deleting it is refused with the policy's name.
    with desk.transaction() as s:
        incidents.create_policy(
            s, desk.clock, name="Network escalation", levels=[{"delay_minutes": 5,
                                                              "targets": [{"kind": "schedule", "ref": "Network"}]}]
        )  # fmt: skip
    delete = f"/oncall/schedules/{oc.schedule_id}/delete"
    refused = client.post(delete, data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 409 and "Network escalation" in refused.text
    assert "Network" in _schedules(desk, w)
    with desk.transaction() as s:
        incidents.delete_policy(s, "Network escalation")
    assert client.post(delete, follow_redirects=False).status_code == 403  # no CSRF token
    gone = client.post(delete, data={"csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/oncall"
    assert _schedules(desk, w) == {}
    assert client.get(f"/oncall/schedules/{oc.schedule_id}", headers={"accept": "text/html"}).status_code == 404
    # The editor speaks Chinese too.
    zh = client.get("/oncall/schedules/new?lang=zh").text
    assert "新建值班表" in zh and "负责人" in zh and "升级策略" in zh


@pytest.mark.parametrize("email", ["agent@vendor.test", "alice@liveco.test"])
def test_only_admins_edit_schedules(client: TestClient, desk: Desk, email: str) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    _login(client, desk, email)
    html = {"accept": "text/html"}
    if email.startswith("agent"):
        # Agents see the schedules but no edit buttons.
        page = client.get(f"/oncall/schedules/{oc.schedule_id}")
        assert page.status_code == 200 and "/layers/new" not in page.text and "/settings" not in page.text
        assert "/oncall/schedules/new" not in client.get("/oncall").text
        token = _csrf(page.text)
    else:
        token = _csrf(client.get("/portal").text)
    [layer] = _layers(desk, w, oc.schedule_id)
    for path in (
        "/oncall/schedules/new",
        f"/oncall/schedules/{oc.schedule_id}/settings",
        f"/oncall/schedules/{oc.schedule_id}/layers/new",
        f"/oncall/schedules/{oc.schedule_id}/layers/{layer['id']}",
    ):
        r = client.get(path, headers=html)
        assert r.status_code == 403 and "Network primary" not in r.text, path
    posts = {
        "/oncall/schedules/new": {"name": "Mine", "zone": "UTC", "owner_id": ""},
        f"/oncall/schedules/{oc.schedule_id}/settings": {"name": "Mine", "zone": "UTC", "owner_id": ""},
        f"/oncall/schedules/{oc.schedule_id}/delete": {"confirm": "yes"},
        f"/oncall/schedules/{oc.schedule_id}/layers/new": _layer_form(w, token),
        f"/oncall/schedules/{oc.schedule_id}/layers/{layer['id']}": _layer_form(w, token),
        f"/oncall/schedules/{oc.schedule_id}/layers/{layer['id']}/delete": {},
    }
    for path, data in posts.items():
        r = client.post(path, data={**data, "csrf_token": token}, headers=html, follow_redirects=False)
        assert r.status_code == 403, path
    assert _schedules(desk, w) == {"Network primary": (oc.schedule_id, "Asia/Shanghai", w.admin_id)}
    assert _layers(desk, w, oc.schedule_id) == [layer]
