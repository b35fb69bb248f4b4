"""The web UI: password login, sessions, CSRF, throttling, pages in both languages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.tenancy import PASSWORD, bearer, build_world, web_login
from zhiban.desk import Desk


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def _login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    r = web_login(client, email, password)
    assert r.status_code == 303, r.text


def test_login_queue_reply_and_logout(client: TestClient, desk: Desk) -> None:
    w = build_world(desk, passwords=True)
    tid = client.post(
        "/api/v1/tickets", json={"subject": "No audio on iOS", "body": "since 4.3.2"}, headers=bearer(w.alice_token)
    ).json()["id"]

    assert client.get("/agent/queue", headers={"accept": "text/html"}, follow_redirects=False).status_code == 303
    _login(client, "agent@vendor.test")
    cookie = client.cookies.get("zhiban_session")
    assert cookie
    queue = client.get("/agent/queue")
    assert queue.status_code == 200 and "No audio on iOS" in queue.text

    page = client.get(f"/tickets/{tid}")
    token = _csrf(page.text)
    # A form post without the session's CSRF token is refused and changes nothing.
    r = client.post(f"/tickets/{tid}/reply", data={"body": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(f"/tickets/{tid}/reply", data={"body": "Looking now", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    detail = client.get(f"/api/v1/tickets/{tid}", headers=bearer(w.agent_token)).json()
    assert [c["body"] for c in detail["comments"]] == ["since 4.3.2", "Looking now"]

    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set("zhiban_session", cookie)  # a stolen old cookie no longer works
    assert client.get("/agent/queue", headers={"accept": "text/html"}, follow_redirects=False).status_code == 303


def test_customer_portal_files_ticket_and_cannot_open_queue(client: TestClient, desk: Desk) -> None:
    w = build_world(desk, passwords=True)
    _login(client, "alice@liveco.test")
    form = client.get("/portal/new")
    token = _csrf(form.text)
    r = client.post(
        "/portal/new",
        data={"subject": "首帧慢", "body": "观众进房首帧超过 3 秒", "priority": "P2", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "首帧慢" in client.get("/portal").text
    bad = client.post("/portal/new", data={"subject": " ", "body": "x", "csrf_token": token})
    assert bad.status_code == 422 and "subject" in bad.text
    queue = client.get("/agent/queue", headers={"accept": "text/html"})
    assert queue.status_code == 403
    mine = client.get("/api/v1/tickets", headers=bearer(w.alice_token)).json()
    assert [t["subject"] for t in mine] == ["首帧慢"]
    # The ticket page offers the customer only a more urgent priority; choosing it raises the ticket.
    page = client.get(f"/tickets/{mine[0]['id']}")
    offered = re.findall(r'<select id="priority" name="priority">(.*?)</select>', page.text)
    assert offered and re.findall(r'value="(P\d)"', offered[0]) == ["P1"]
    r = client.post(
        f"/tickets/{mine[0]['id']}/priority", data={"priority": "P1", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303
    assert client.get(f"/api/v1/tickets/{mine[0]['id']}", headers=bearer(w.alice_token)).json()["priority"] == "P1"
    assert 'name="priority"' not in client.get(f"/tickets/{mine[0]['id']}").text  # nothing above P1


def test_login_throttle_and_uniform_failure(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    unknown = web_login(client, "nobody@x.test", "whatever-long")
    wrong = web_login(client, "alice@liveco.test", "wrong-password")
    assert unknown.status_code == wrong.status_code == 401
    for _ in range(4):
        web_login(client, "alice@liveco.test", "wrong-password")
    # Five failures: even the right password is refused for a while.
    r = web_login(client, "alice@liveco.test", PASSWORD)
    assert r.status_code == 429


def test_language_switch_uses_the_catalog(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    en = client.get("/login?lang=en")
    assert "Sign in" in en.text and 'lang="en"' in en.text
    zh = client.get("/login?lang=zh")
    assert "登录" in zh.text and 'lang="zh-CN"' in zh.text
    # The choice sticks in a cookie.
    assert "登录" in client.get("/login").text


def test_next_parameter_cannot_redirect_off_site(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    r = web_login(client, "agent@vendor.test", PASSWORD, next="//evil.example/x")
    assert r.headers["location"] == "/agent/queue"


def test_operations_endpoints(client: TestClient, desk: Desk) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}
    client.get("/api/v1/tickets")
    desk.settings.metrics_token = "scrape-token"
    metrics = client.get("/metrics", headers=bearer("scrape-token")).text
    assert 'zhiban_http_requests_total{method="GET",route="/api/v1/tickets",status="401"}' in metrics
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["type"] == "https://zhiban.dev/problems/not-found"
    assert client.get("/healthz").headers["x-request-id"]
    assert client.get("/static/vendor/htmx.min.js").status_code == 200
