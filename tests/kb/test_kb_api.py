"""Knowledge base over HTTP: visibility, votes, deflections, the help center, portal and ticket suggestions."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.kb.kb_kit import copy_subset
from tests.tenancy import bearer, build_world, web_login
from zhiban.desk import Desk
from zhiban.kb import service


def _login(client: TestClient, email: str) -> str:
    r = web_login(client, email)
    assert r.status_code == 303, r.text
    page = client.get("/help")
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert match
    return match.group(1)


def _seed(desk: Desk, tmp_path: Path) -> None:
    with desk.transaction() as s:
        service.import_corpus(s, desk.clock, copy_subset(tmp_path / "kb"))


def _article(client: TestClient, token: str, **fields: object) -> dict:  # type: ignore[type-arg]
    body = {"title": "t", "body": "b", "language": "en", **fields}
    r = client.post("/api/v1/kb/articles", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_visibility_edit_votes_and_deflections(client: TestClient, desk: Desk, tmp_path: Path) -> None:
    w = build_world(desk)
    _seed(desk, tmp_path)
    hits = client.get("/api/v1/kb/search", params={"q": "no audio in the call", "lang": "en"}).json()["results"]
    assert hits and hits[0]["public"] and hits[0]["url"] == f"/help/articles/{hits[0]['id']}"

    internal = _article(
        client, w.agent_token, title="Escalation runbook", body="Page the **quuxnet** on-call.", public=False
    )
    assert internal["version"] == 1 and [v["number"] for v in internal["versions"]] == [1]
    for token in (None, w.alice_token):
        headers = bearer(token) if token else {}
        assert client.get("/api/v1/kb/search?q=quuxnet", headers=headers).json()["results"] == []
        assert client.get(f"/api/v1/kb/articles/{internal['id']}", headers=headers).status_code == 404
    staff = client.get("/api/v1/kb/search?q=quuxnet", headers=bearer(w.agent_token)).json()["results"]
    assert [h["id"] for h in staff] == [internal["id"]] and staff[0]["public"] is False
    assert (
        client.post(
            "/api/v1/kb/articles", json={"title": "x", "body": "y", "language": "en"}, headers=bearer(w.alice_token)
        ).status_code
        == 403
    )

    # Publishing is an edit: a new version, and now customers find it.
    put = client.put(
        f"/api/v1/kb/articles/{internal['id']}",
        json={"title": "Escalation runbook", "body": "Page the **quuxnet** on-call.", "language": "en", "public": True},
        headers=bearer(w.agent_token),
    )
    assert put.status_code == 200 and put.json()["version"] == 2
    assert [v["number"] for v in put.json()["versions"]] == [2, 1]
    found = client.get("/api/v1/kb/search?q=quuxnet", headers=bearer(w.alice_token)).json()["results"]
    assert [h["id"] for h in found] == [internal["id"]]
    assert client.get(f"/api/v1/kb/articles/{internal['id']}", headers=bearer(w.alice_token)).json()["versions"] is None

    # Votes: anonymous ones add up; a signed-in reader has one vote, which they may change.
    url = f"/api/v1/kb/articles/{hits[0]['id']}/vote"
    client.post(url, json={"helpful": True})
    client.post(url, json={"helpful": True})
    client.post(url, json={"helpful": True}, headers=bearer(w.alice_token))
    client.post(url, json={"helpful": True}, headers=bearer(w.alice_token))
    last = client.post(url, json={"helpful": False}, headers=bearer(w.alice_token)).json()
    assert (last["helpful"], last["not_helpful"]) == (2, 1)
    assert client.post(url, json={"helpful": "maybe"}).status_code == 422

    r = client.post(
        "/api/v1/kb/deflections", json={"query": "no audio", "article_id": hits[0]["id"]}, headers=bearer(w.alice_token)
    )
    assert r.status_code == 201
    assert client.post("/api/v1/kb/deflections", json={"query": "", "article_id": 1}).status_code == 422
    with Session(desk.db) as s:
        assert service.count_deflections(s) == 1 and service.count_deflections(s, hits[0]["id"]) == 1


def test_help_center_renders_markdown_without_raw_html(client: TestClient, desk: Desk, tmp_path: Path) -> None:
    w = build_world(desk)
    article = _article(
        client,
        w.agent_token,
        title="Screen share tips",
        body="## Steps\n\n<script>alert('x')</script>\n\n[bad](javascript:alert(1)) and **bold** text.",
    )
    page = client.get(f"/help/articles/{article['id']}", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "<h2>Steps</h2>" in page.text and "<strong>bold</strong>" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert 'href="javascript:' not in page.text
    # The vote form works without signing in, and answers with a fragment.
    vote = client.post(f"/help/articles/{article['id']}/vote", data={"helpful": "yes"})
    assert vote.status_code == 200 and "1" in vote.text and "<html" not in vote.text
    listing = client.get("/help?lang=zh")
    assert "帮助中心" in listing.text and "Screen share tips" not in listing.text  # an English article
    assert "Screen share tips" in client.get("/help?lang=en").text
    assert "Screen share tips" in client.get("/help?q=screen+share&lang=en").text


def test_portal_deflection_and_agent_suggestions(client: TestClient, desk: Desk, tmp_path: Path) -> None:
    build_world(desk, passwords=True)
    _seed(desk, tmp_path)
    csrf = _login(client, "alice@liveco.test")
    panel = client.get("/portal/suggestions", params={"subject": "video freezes", "body": "remote video is choppy"})
    assert panel.status_code == 200
    ids = re.findall(r'name="article_id" value="(\d+)"', panel.text)
    assert ids, panel.text
    done = client.post(
        "/portal/deflect",
        data={"query": "video freezes", "article_id": ids[0]},
        headers={"X-CSRF-Token": csrf},
    )
    assert done.status_code == 200 and 'href="/help/articles/' in done.text
    assert client.post("/portal/deflect", data={"query": "x", "article_id": ids[0]}).status_code == 403  # no CSRF
    with Session(desk.db) as s:
        assert service.count_deflections(s) == 1
    assert client.get("/portal/suggestions", params={"subject": "pizza recipes", "body": ""}).text.strip() == ""
    ticket = client.post(
        "/portal/new",
        data={"subject": "视频卡顿", "body": "远端视频画面卡顿", "csrf_token": csrf},
        follow_redirects=False,
    )
    tid = int(ticket.headers["location"].rsplit("/", 1)[1])
    client.post("/logout", data={"csrf_token": csrf})

    csrf = _login(client, "agent@vendor.test")
    page = client.get(f"/tickets/{tid}")
    assert f"/agent/kb/tickets/{tid}/suggestions" in page.text and f"/agent/triage/tickets/{tid}" in page.text
    suggestions = client.get(f"/agent/kb/tickets/{tid}/suggestions")
    article_ids = re.findall(r'name="article_id" value="(\d+)"', suggestions.text)
    assert article_ids, suggestions.text
    inserted = client.post(
        f"/agent/kb/tickets/{tid}/insert",
        data={"article_id": article_ids[0], "body": "Hello,"},
        headers={"X-CSRF-Token": csrf},
    )
    assert inserted.status_code == 200
    assert 'id="reply"' in inserted.text and "hx-swap-oob" in inserted.text
    assert f"/help/articles/{article_ids[0]}" in inserted.text and "Hello," in inserted.text
    with Session(desk.db) as s:
        assert service.count_insertions(s, tid) == 1


def test_agent_editor_creates_and_versions(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    csrf = _login(client, "agent@vendor.test")
    form = {
        "title": "Token 109",
        "body": "Renew the token before it expires.",
        "language": "en",
        "public": "1",
        "csrf_token": csrf,
    }
    r = client.post("/agent/kb/new", data=form, follow_redirects=False)
    assert r.status_code == 303
    edit_url = r.headers["location"]
    r = client.post(
        edit_url, data={**form, "body": "Call renewToken on onTokenPrivilegeWillExpire."}, follow_redirects=False
    )
    assert r.status_code == 303
    page = client.get(edit_url)
    assert "v2" in page.text and "v1" in page.text and "renewToken" in page.text
    assert "Token 109" in client.get("/agent/kb").text
    bad = client.post("/agent/kb/new", data={**form, "body": "   "})
    assert bad.status_code == 422 and "empty" in bad.text
