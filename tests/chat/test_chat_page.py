"""The chat groups page: admins only; bind with the form (a refusal shown above it), unbind with a button."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.tenancy import build_world, web_login
from zhiban.desk import Desk


def test_admins_bind_and_unbind_groups_on_the_page(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    web_login(client, "alice@liveco.test")
    assert client.get("/agent/chat", headers={"accept": "text/html"}).status_code == 403
    client.cookies.clear()
    web_login(client, "agent@vendor.test")
    assert client.get("/agent/chat", headers={"accept": "text/html"}).status_code == 403
    client.cookies.clear()
    web_login(client, "admin@vendor.test")
    page = client.get("/agent/chat")
    assert page.status_code == 200 and "Chat groups" in page.text and "chat.no_groups" not in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    form = {"csrf_token": token.group(1), "platform": "feishu", "group_id": "oc_liveco", "organization": "liveco"}
    assert client.post("/agent/chat/groups", data={**form, "csrf_token": ""}, follow_redirects=False).status_code == 403
    bound = client.post("/agent/chat/groups", data=form, follow_redirects=False)
    assert (bound.status_code, bound.headers["location"]) == (303, "/agent/chat")
    again = client.post("/agent/chat/groups", data=form)
    assert again.status_code == 409 and "already bound" in again.text
    wrong = client.post("/agent/chat/groups", data={**form, "group_id": "oc_x", "requester": "bob@classmate.test"})
    assert wrong.status_code == 422 and "customer user of the group&#39;s organization" in wrong.text
    page = client.get("/agent/chat")
    assert "oc_liveco" in page.text and "oc_x" not in page.text
    [group_id] = re.findall(r'action="/agent/chat/groups/([A-Za-z0-9]+)/unbind"', page.text)
    gone = client.post(
        f"/agent/chat/groups/{group_id}/unbind", data={"csrf_token": token.group(1)}, follow_redirects=False
    )
    assert gone.status_code == 303 and "oc_liveco" not in client.get("/agent/chat").text
