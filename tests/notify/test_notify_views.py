"""'How I am paged' page: staff set their own contact methods and rules; admins anyone's; customers nobody's."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.oncall.test_oncall_views import _csrf, _login
from tests.tenancy import build_world
from zhiban.desk import Desk
from zhiban.notify import service

PAGE = "/oncall/notifications"
HTML = {"accept": "text/html"}


def _paging(desk: Desk, person_id: str) -> dict[str, Any]:
    with desk.transaction() as s:
        methods = {m.id: (m.channel, m.config, m.label) for m in service.contact_methods_of(s, person_id)}
        rules = [(r.contact_method_id, r.delay_minutes, r.urgency) for r in service.rules_of(s, person_id)]
        high = [m.id for _, m in service.paging_rules(s, person_id, "high")]
        low = [m.id for _, m in service.paging_rules(s, person_id, "low")]
    return {"methods": methods, "rules": rules, "high": high, "low": low}


def test_an_agent_sets_how_they_are_paged(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    _login(client, desk, "agent@vendor.test")
    page = client.get(PAGE)
    assert page.status_code == 200 and "pages go by e-mail to agent@vendor.test at once" in page.text
    assert 'aria-current="page">How I am paged' in page.text
    token = _csrf(page.text)
    phone = {"person_id": w.agent_id, "channel": "sms", "address": "+8613912345678", "secret": "", "label": "phone"}

    assert client.post(PAGE + "/methods", data=phone).status_code == 403  # no CSRF token
    refusals = {
        "E.164": {"address": "13800138000"},
        "secret": {"channel": "webhook", "address": "https://hooks.vendor.test/page", "secret": "short"},
        "unknown channel type": {"channel": "pigeon"},
        "takes no secret": {"channel": "email", "address": "me@vendor.test", "secret": "0123456789abcdef"},
    }
    for reason, change in refusals.items():
        bad = client.post(PAGE + "/methods", data={**phone, **change, "csrf_token": token})
        assert bad.status_code == 422 and reason in bad.text, reason
        assert "0123456789abcdef" not in bad.text  # a typed secret is not sent back
    assert _paging(desk, w.agent_id)["methods"] == {}

    done = client.post(PAGE + "/methods", data={**phone, "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == PAGE
    mail = {**phone, "channel": "email", "address": "agent@vendor.test, night@vendor.test", "label": ""}
    assert client.post(PAGE + "/methods", data={**mail, "csrf_token": token}).status_code == 200
    methods = _paging(desk, w.agent_id)["methods"]
    by_channel = {channel: (mid, config, label) for mid, (channel, config, label) in methods.items()}
    assert by_channel["sms"][1:] == ({"to": "+8613912345678"}, "phone")
    assert by_channel["email"][1] == {"to": ["agent@vendor.test", "night@vendor.test"]}
    sms_id, email_id = by_channel["sms"][0], by_channel["email"][0]
    page = client.get(PAGE).text
    assert "phone" in page and "+8613912345678" not in page  # destinations are never shown back

    # Rules: SMS 5 minutes after a high-urgency page; e-mail at once for any.
    rule = {"person_id": w.agent_id, "contact_method_id": sms_id, "delay_minutes": "5", "urgency": "high"}
    bad = client.post(PAGE + "/rules", data={**rule, "delay_minutes": "-1", "csrf_token": token})
    assert bad.status_code == 422 and "delay_minutes" in bad.text and _paging(desk, w.agent_id)["rules"] == []
    assert client.post(PAGE + "/rules", data=rule).status_code == 403
    assert client.post(PAGE + "/rules", data={**rule, "csrf_token": token}, follow_redirects=False).status_code == 303
    at_once = {**rule, "contact_method_id": email_id, "delay_minutes": "0", "urgency": "any"}
    assert client.post(PAGE + "/rules", data={**at_once, "csrf_token": token}).status_code == 200
    paging = _paging(desk, w.agent_id)
    assert paging["rules"] == [(email_id, 0, "any"), (sms_id, 5, "high")]
    assert paging["high"] == [email_id, sms_id] and paging["low"] == [email_id]
    page = client.get(PAGE).text
    assert "5 min after being paged" in page and "at once" in page

    # Removing the e-mail method removes its rule; removing the SMS rule leaves no rule at all.
    sms_rule = re.search(r'action="/oncall/notifications/rules/([0-9a-f]+)/delete"', page)
    assert sms_rule
    gone = client.post(f"{PAGE}/methods/{email_id}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert gone.status_code == 303
    assert _paging(desk, w.agent_id)["rules"] == [(sms_id, 5, "high")]
    with desk.transaction() as s:
        rule_id = service.rules_of(s, w.agent_id)[0].id
    r = client.post(f"{PAGE}/rules/{rule_id}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert _paging(desk, w.agent_id) == {"methods": {sms_id: ("sms", {"to": "+8613912345678"}, "phone")},
                                        "rules": [], "high": [], "low": []}  # fmt: skip


def test_admins_set_anyones_paging_agents_only_their_own(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    _login(client, desk, "admin@vendor.test")
    page = client.get(PAGE, params={"person_id": w.agent_id})
    assert page.status_code == 200 and "How Agent Wang is paged" in page.text
    token = _csrf(page.text)
    phone = {"person_id": w.agent_id, "channel": "voice", "address": "+8613912345678", "label": "call"}
    r = client.post(PAGE + "/methods", data={**phone, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?person_id={w.agent_id}"
    [method_id] = _paging(desk, w.agent_id)["methods"]
    # A customer is never paged: not even an admin sets them up.
    assert client.get(PAGE, params={"person_id": w.alice_id}, headers=HTML).status_code == 404
    r = client.post(PAGE + "/methods", data={**phone, "person_id": w.alice_id, "csrf_token": token})
    assert r.status_code == 404 and _paging(desk, w.alice_id)["methods"] == {}

    client.cookies.clear()
    _login(client, desk, "agent@vendor.test")
    token = _csrf(client.get(PAGE).text)
    assert client.get(PAGE, params={"person_id": w.admin_id}, headers=HTML).status_code == 403
    r = client.post(PAGE + "/methods", data={**phone, "person_id": w.admin_id, "csrf_token": token}, headers=HTML)
    assert r.status_code == 403 and _paging(desk, w.admin_id)["methods"] == {}
    with desk.transaction() as s:
        admin_method = service.add_contact_method(
            s, desk.clock, person_id=w.admin_id, channel="sms", config={"to": "+8613900139000"}
        ).id
    # Another person's method, named under one's own person: not found, not removed.
    r = client.post(f"{PAGE}/methods/{admin_method}/delete", data={"csrf_token": token}, headers=HTML)
    assert r.status_code == 404 and admin_method in _paging(desk, w.admin_id)["methods"]
    assert method_id in _paging(desk, w.agent_id)["methods"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_customers_have_no_paging_page(client: TestClient, desk: Desk, method: str) -> None:
    w = build_world(desk)
    _login(client, desk, "alice@liveco.test")
    if method == "get":
        assert client.get(PAGE, headers=HTML).status_code == 403
        return
    token = _csrf(client.get("/portal").text)
    data = {"csrf_token": token, "channel": "sms", "address": "+8613912345678", "person_id": ""}
    assert client.post(PAGE + "/methods", data=data, headers=HTML).status_code == 403
    assert _paging(desk, w.alice_id)["methods"] == {}
