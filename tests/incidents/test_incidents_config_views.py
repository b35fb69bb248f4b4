"""Escalation policy and service pages: admins set up paging in the browser; what they save is what pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.oncall.oncall_kit import daily_rotation
from tests.oncall.test_oncall_views import _csrf, _login
from tests.tenancy import World, build_world
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.incidents import integrations, service

HTML = {"accept": "text/html"}


def _team(desk: Desk, w: World) -> str:
    with desk.transaction() as s:
        team = identity.create_team(s, name="Network", domain="network")
        identity.add_team_member(s, team.id, w.agent_id)
        identity.add_team_member(s, team.id, w.admin_id)
        return team.id


def _policies(desk: Desk) -> dict[str, dict[str, Any]]:
    with desk.transaction() as s:
        return {
            p.name: {"id": p.id, "levels": p.levels, "repeats": p.repeats, "zone": p.calendar_zone}
            for p in service.list_policies(s)
        }


def _services(desk: Desk) -> dict[str, dict[str, Any]]:
    with desk.transaction() as s:
        return {
            r.name: {
                "id": r.id,
                "policy": r.policy_id,
                "urgency": r.urgency_rule,
                "ack": r.ack_timeout_minutes,
                "zone": r.support_zone,
                "organization": r.organization_id,
            }
            for r in service.list_services(s)
        }


def _policy_form(token: str, **fields: str) -> dict[str, Any]:
    """The policy form as posted: two levels with three target rows and one window row each, plus an empty level."""
    data: dict[str, Any] = {"csrf_token": token, "name": "Network escalation", "repeats": "1"}
    data |= {"calendar_country": "CN", "calendar_zone": "Asia/Shanghai"}
    for i in range(3):
        data |= {f"l{i}_delay": "5", f"l{i}_business": "", f"l{i}_zone": ""}
        data |= {f"l{i}_t{j}": "" for j in range(3)}
        data |= {f"l{i}_w0_start": "", f"l{i}_w0_end": "", f"l{i}_w0_day": [str(d) for d in range(7)]}
    data.update(fields)
    return data


def test_admin_creates_edits_and_deletes_a_policy(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    team = _team(desk, w)
    _login(client, desk, "admin@vendor.test")
    listing = client.get("/oncall/policies")
    assert listing.status_code == 200 and "No escalation policies yet." in listing.text
    assert 'href="/oncall/policies/new"' in listing.text and 'aria-current="page"' in listing.text
    form = client.get("/oncall/policies/new")
    token = _csrf(form.text)
    # What a level can page: people, schedules and teams, each in its group.
    for value in (f"person:{w.agent_id}", f"schedule:{oc.schedule_id}", f"team:{team}"):
        assert f'<option value="{value}"' in form.text
    assert f'<option value="person:{w.alice_id}"' not in form.text  # customers are never paged

    good = _policy_form(
        token,
        l0_t0=f"schedule:{oc.schedule_id}",
        l1_t0=f"person:{w.admin_id}",
        l1_t1=f"team:{team}",
        l1_rr1="1",
        l1_delay="10",
        l1_business="out",
        l1_w0_start="18:00",
        l1_w0_end="09:00",
        l1_w0_day=["0", "1", "2", "3", "4"],
    )
    assert client.post("/oncall/policies/new", data={**good, "csrf_token": ""}).status_code == 403
    refusals = {
        "at least one level": {"l0_t0": "", "l1_t0": "", "l1_t1": ""},
        "greater than or equal to 1": {"l0_delay": "0"},
        "round robin applies to team targets only": {"l0_rr0": "1"},
        "no on-call schedule": {"l0_t0": "schedule:nope"},
        "window start": {"l1_w0_start": "25:00"},
        "repeats": {"repeats": "many"},
    }
    for reason, change in refusals.items():
        bad = client.post("/oncall/policies/new", data={**good, **change})
        assert bad.status_code == 422 and reason in bad.text, reason
        assert 'value="Network escalation"' in bad.text  # the typed form comes back
    assert _policies(desk) == {}

    made = client.post("/oncall/policies/new", data=good, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/oncall/policies"
    policy = _policies(desk)["Network escalation"]
    assert policy["repeats"] == 1 and policy["levels"] == [
        {"delay_minutes": 5, "targets": [{"kind": "schedule", "ref": oc.schedule_id, "round_robin": False}]},
        {
            "delay_minutes": 10,
            "targets": [
                {"kind": "person", "ref": w.admin_id, "round_robin": False},
                {"kind": "team", "ref": team, "round_robin": True},
            ],
            "condition": {
                "zone": "Asia/Shanghai",
                "windows": [{"start": "18:00", "end": "09:00", "weekdays": [0, 1, 2, 3, 4]}],
                "business_hours": False,
            },
        },
    ]
    listing = client.get("/oncall/policies").text
    assert "Network primary" in listing and "escalate after 10 min" in listing
    assert "Mon, Tue, Wed, Thu, Fri 18:00–09:00 (Asia/Shanghai) · outside business hours" in listing

    # Edit: the form shows the stored levels; dropping the first level and renaming is saved as such.
    edit = client.get(f"/oncall/policies/{policy['id']}")
    assert re.search(rf'name="l0_t0".*?<option value="schedule:{oc.schedule_id}" selected>', edit.text, re.S)
    assert re.search(r'name="l1_rr1" value="1" checked', edit.text)
    with desk.transaction() as s:
        service.create_policy(s, desk.clock, name="Other", levels=[{"delay_minutes": 5, "targets": [
            {"kind": "person", "ref": w.agent_id}]}])  # fmt: skip
    taken = client.post(f"/oncall/policies/{policy['id']}", data={**good, "name": "Other"})
    assert taken.status_code == 409 and "exists" in taken.text
    assert _policies(desk)["Network escalation"] == policy
    renamed = {**good, "name": "Network", "l0_t0": "", "repeats": "0"}
    saved = client.post(f"/oncall/policies/{policy['id']}", data=renamed, follow_redirects=False)
    assert saved.status_code == 303
    after = _policies(desk)["Network"]
    assert after["id"] == policy["id"] and after["repeats"] == 0 and after["levels"] == policy["levels"][1:]

    # Delete: refused while a service uses it, then done.
    with desk.transaction() as s:
        svc = service.create_service(s, desk.clock, name="media network", policy=policy["id"])
    delete = f"/oncall/policies/{policy['id']}/delete"
    refused = client.post(delete, data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 409 and "media network" in refused.text and "Network" in _policies(desk)
    with desk.transaction() as s:
        svc = service.get_service(s, svc.id)
        svc.policy_id = None
    assert client.post(delete, data={"confirm": "yes"}).status_code == 403
    gone = client.post(delete, data={"csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert gone.status_code == 303 and "Network" not in _policies(desk)


def _service_form(token: str, **fields: str) -> dict[str, str]:
    data = {
        "csrf_token": token,
        "name": "media network cn-east",
        "description": "edge nodes in east China",
        "policy": "",
        "urgency_rule": "severity",
        "ack_timeout": "45",
        "support_country": "CN",
        "support_zone": "Asia/Shanghai",
        "organization_id": "",
    }
    data.update(fields)
    return data


def test_admin_creates_a_service_and_its_integrations(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        policy = service.create_policy(
            s, desk.clock, name="network", levels=[{"delay_minutes": 5, "targets": [{"kind": "person",
                                                                                     "ref": w.agent_id}]}]
        ).id  # fmt: skip
    _login(client, desk, "admin@vendor.test")
    assert "No services yet." in client.get("/oncall/services").text
    form = client.get("/oncall/services/new")
    token = _csrf(form.text)
    good = _service_form(token, policy=policy, organization_id=w.liveco)
    assert client.post("/oncall/services/new", data={**good, "csrf_token": ""}).status_code == 403
    refusals = {
        "whole number of minutes": {"ack_timeout": "soon"},
        "less than or equal to 1440": {"ack_timeout": "2000"},
        "urgency_rule": {"urgency_rule": "urgent"},
        "bad country code": {"support_country": "C1"},
        "name": {"name": ""},
    }
    for reason, change in refusals.items():
        bad = client.post("/oncall/services/new", data={**good, **change})
        assert bad.status_code == 422 and reason in bad.text, reason
    assert _services(desk) == {}

    made = client.post("/oncall/services/new", data=good, follow_redirects=False)
    assert made.status_code == 303
    svc = _services(desk)["media network cn-east"]
    assert made.headers["location"] == f"/oncall/services/{svc['id']}"
    assert svc | {"id": ""} == {
        "id": "",
        "policy": policy,
        "urgency": "severity",
        "ack": 45,
        "zone": "Asia/Shanghai",
        "organization": w.liveco,
    }
    listing = client.get("/oncall/services").text
    assert "media network cn-east" in listing and "network" in listing

    # Integrations: none yet; a heartbeat without its interval is refused; an Events v2 key is shown once made.
    page = client.get(f"/oncall/services/{svc['id']}")
    assert "this service receives no alerts" in page.text
    path = f"/oncall/services/{svc['id']}/integrations"
    bad = client.post(path, data={"csrf_token": token, "type": "heartbeat", "name": "cron", "heartbeat_seconds": ""})
    assert bad.status_code == 422 and "a heartbeat needs an interval" in bad.text
    assert client.post(path, data={"type": "events-v2", "name": "Grafana"}).status_code == 403
    made = client.post(path, data={"csrf_token": token, "type": "events-v2", "name": "Grafana"}, follow_redirects=False)
    assert made.status_code == 303
    beat = client.post(path, data={"csrf_token": token, "type": "heartbeat", "name": "cron", "heartbeat_seconds": "60"})
    assert beat.status_code == 200  # followed the redirect
    with desk.transaction() as s:
        hooks = {h.name: h for h in integrations.list_integrations(s, svc["id"])}
        assert {h.type for h in hooks.values()} == {"events-v2", "heartbeat"} and hooks["cron"].heartbeat_seconds == 60
        key = hooks["Grafana"].key
    page = client.get(f"/oncall/services/{svc['id']}").text
    assert f"routing key: {key}" in page and "http://testserver/v2/enqueue" in page
    assert f"http://testserver/api/v1/heartbeats/{hooks['cron'].key}" in page

    # Edit: no policy any more, urgency high; a taken name is refused and changes nothing.
    with desk.transaction() as s:
        service.create_service(s, desk.clock, name="P1 tickets")
    edit = f"/oncall/services/{svc['id']}"
    taken = client.post(edit, data=_service_form(token, name="P1 tickets", urgency_rule="high"))
    assert taken.status_code == 409 and "exists" in taken.text
    assert _services(desk)["media network cn-east"]["urgency"] == "severity"
    saved = client.post(edit, data=_service_form(token, urgency_rule="high", ack_timeout="0"), follow_redirects=False)
    assert saved.status_code == 303
    after = _services(desk)["media network cn-east"]
    assert (after["policy"], after["urgency"], after["ack"], after["organization"]) == (None, "high", 0, None)
    assert "no policy: pages nobody" in client.get("/oncall/services").text


@pytest.mark.parametrize("email", ["agent@vendor.test", "alice@liveco.test"])
def test_only_admins_change_policies_and_services(client: TestClient, desk: Desk, email: str) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        policy = service.create_policy(
            s, desk.clock, name="network", levels=[{"delay_minutes": 5, "targets": [{"kind": "person",
                                                                                     "ref": w.agent_id}]}]
        )  # fmt: skip
        svc = service.create_service(s, desk.clock, name="media network", policy=policy.id)
        key = integrations.create_integration(s, desk.clock, type_="events-v2", service_ref=svc.id).key
        policy_id, service_id = policy.id, svc.id
    before = (_policies(desk), _services(desk))
    _login(client, desk, email)
    agent = email.startswith("agent")
    if agent:
        # Agents read policies and services, without edit links and without the integration keys (secrets).
        policies = client.get("/oncall/policies")
        assert (
            policies.status_code == 200 and "network" in policies.text and "/oncall/policies/new" not in policies.text
        )
        page = client.get(f"/oncall/services/{service_id}")
        assert page.status_code == 200 and "media network" in page.text and key not in page.text
        assert "/integrations" not in page.text
        token = _csrf(page.text)
    else:
        for path in ("/oncall/policies", "/oncall/services", f"/oncall/services/{service_id}"):
            r = client.get(path, headers=HTML)
            assert r.status_code == 403 and "media network" not in r.text, path
        token = _csrf(client.get("/portal").text)
    for path in ("/oncall/policies/new", f"/oncall/policies/{policy_id}", "/oncall/services/new"):
        assert client.get(path, headers=HTML).status_code == 403, path
    posts = {
        "/oncall/policies/new": _policy_form(token, l0_t0=f"person:{w.agent_id}", name="mine"),
        f"/oncall/policies/{policy_id}": _policy_form(token, l0_t0=f"person:{w.agent_id}", name="mine"),
        f"/oncall/policies/{policy_id}/delete": {"csrf_token": token, "confirm": "yes"},
        "/oncall/services/new": _service_form(token, name="mine"),
        f"/oncall/services/{service_id}": _service_form(token, name="mine"),
        f"/oncall/services/{service_id}/integrations": {"csrf_token": token, "type": "webhook", "name": "x"},
    }
    for path, data in posts.items():
        r = client.post(path, data=data, headers=HTML, follow_redirects=False)
        assert r.status_code == 403, path
    assert (_policies(desk), _services(desk)) == before
    with desk.transaction() as s:
        assert len(integrations.list_integrations(s, service_id)) == 1
