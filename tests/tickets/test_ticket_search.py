"""Finding tickets: full text in Chinese and English over subjects, messages and notes, field filters, tenancy,
and saved views; on SQLite (FTS5) and PostgreSQL (GIN tsvector). The terms are cut by the real follower job."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.tenancy import World, bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.identity import service as identity
from zhiban.identity.model import DEFAULT_SCOPES, Role
from zhiban.tickets import search
from zhiban.tickets.jobs import registry as ticket_jobs
from zhiban.tickets.store import TicketTextRow

PROBLEM = "https://zhiban.dev/problems/"


def _file(client: TestClient, token: str, subject: str, body: str, priority: str = "P3") -> int:
    r = client.post("/api/v1/tickets", json={"subject": subject, "body": body, "priority": priority}, headers=token)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _say(client: TestClient, token: dict[str, str], tid: int, body: str, public: bool = True) -> None:
    r = client.post(f"/api/v1/tickets/{tid}/comments", json={"body": body, "public": public}, headers=token)
    assert r.status_code == 201, r.text


def _follow(desk: Desk) -> None:
    """Run the tickets.follow jobs as a worker would: the search follower cuts what the changes brought."""
    worker = Worker(desk.sessions, ticket_jobs, desk.clock)
    while worker.run_once(limit=100):
        pass


def _ids(client: TestClient, token: dict[str, str], **params: Any) -> list[int]:
    r = client.get("/api/v1/tickets", params=params, headers=token)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()]


@pytest.fixture
def world(desk: Desk) -> World:
    return build_world(desk)


def test_chinese_english_and_mixed_words_find_subjects_messages_and_replies(
    client: TestClient, desk: Desk, world: World, clock: FrozenClock
) -> None:
    alice, agent = bearer(world.alice_token), bearer(world.agent_token)
    lag = _file(client, alice, "直播间卡顿严重", "晚高峰观众反馈画面一卡一卡的")
    choppy = _file(client, alice, "Audio is choppy on Android", "Users in the classroom hear robotic voices")
    join = _file(client, alice, "joinChannel 失败", "SDK 4.3.2 报错 error 110，进不了频道")
    clock.advance(timedelta(minutes=5))
    _say(client, agent, choppy, "请升级到 4.3.3，回声消除已修复")
    _say(client, alice, lag, "the stutter also shows on iOS viewers")
    assert _ids(client, alice, q="卡顿") == []  # not cut yet: filing did not wait for jieba
    _follow(desk)

    assert _ids(client, alice, q="卡顿") == [lag]
    assert _ids(client, alice, q="直播间") == [lag]
    assert _ids(client, alice, q="choppy audio") == [choppy]  # every word, in any order; "choppy" is stemmed
    assert _ids(client, alice, q="robotic voice") == [choppy]  # the first message
    assert _ids(client, alice, q="回声消除") == [choppy]  # the agent's reply, a customer sees it
    assert _ids(client, alice, q="stutter iOS") == [lag]  # the customer's later message, English in a Chinese ticket
    assert _ids(client, alice, q="joinChannel 失败") == [join]  # mixed
    assert _ids(client, alice, q="error 110") == [join]
    assert _ids(client, alice, q="卡顿 choppy") == []  # all words must match
    assert _ids(client, alice, q="the") == []  # only a stop word: nothing to look for
    assert _ids(client, agent, q="频道") == [join]  # agents find customers' tickets too


def test_a_subject_hit_ranks_above_a_passing_mention(client: TestClient, desk: Desk, world: World) -> None:
    alice, agent = bearer(world.alice_token), bearer(world.agent_token)
    subject = _file(client, alice, "推流卡顿", "主播推流卡顿，观众端卡顿明显")  # the older one: recency alone loses it
    passing = _file(client, alice, "Question about billing", "Also, we saw some 卡顿 once last week, not urgent")
    _file(client, alice, "Recording missing", "cloud recording file is missing")
    _follow(desk)
    assert _ids(client, alice, q="卡顿") == [subject, passing]
    assert _ids(client, agent, q="卡顿") == [subject, passing]
    # Newest first without words, as the list always did.
    assert _ids(client, alice)[:2] == sorted(_ids(client, alice), reverse=True)[:2]


def test_internal_notes_are_found_by_agents_never_by_customers(client: TestClient, desk: Desk, world: World) -> None:
    alice, agent = bearer(world.alice_token), bearer(world.agent_token)
    tid = _file(client, alice, "Video freezes", "since 03:00")
    _say(client, agent, tid, "edge node shedge07 overloaded, escalate to CDN vendor", public=False)
    _follow(desk)
    assert _ids(client, agent, q="shedge07") == [tid]
    assert _ids(client, alice, q="shedge07") == []
    assert _ids(client, alice, q="freezes") == [tid]
    # Neither does a mix of a public word and a note's word.
    assert _ids(client, alice, q="freezes overloaded") == []
    assert _ids(client, agent, q="freezes overloaded") == [tid]


def test_a_customer_never_finds_another_organizations_ticket(client: TestClient, desk: Desk, world: World) -> None:
    alice, bob = bearer(world.alice_token), bearer(world.bob_token)
    liveco = _file(client, alice, "白板同步延迟", "whiteboard sync lags for teachers")
    mine = _file(client, bob, "白板同步延迟", "our whiteboard lags too")
    _follow(desk)
    assert _ids(client, bob, q="白板") == [mine]
    assert _ids(client, bob, q="白板", organization_id=world.liveco) == [mine]  # the organization asked is ignored
    assert _ids(client, alice, q="whiteboard") == [liveco]
    assert sorted(_ids(client, bearer(world.agent_token), q="白板")) == sorted([liveco, mine])


def test_filters_combine_with_words_and_with_each_other(
    client: TestClient, desk: Desk, world: World, clock: FrozenClock
) -> None:
    alice, bob, agent = bearer(world.alice_token), bearer(world.bob_token), bearer(world.agent_token)
    p1 = _file(client, alice, "Black screen for all viewers", "黑屏", priority="P1")
    p3 = _file(client, alice, "Black screen on one Android phone", "黑屏 only on a Xiaomi", priority="P3")
    other = _file(client, bob, "Black screen in class", "黑屏", priority="P1")
    start = clock.now()
    clock.advance(timedelta(days=5))
    assert client.patch(f"/api/v1/tickets/{p3}", json={"assignee_id": world.agent_id}, headers=agent).status_code == 200
    _follow(desk)

    assert sorted(_ids(client, agent, q="黑屏", priority="P1")) == sorted([p1, other])
    assert _ids(client, agent, q="黑屏", priority="P1", organization_id=world.liveco) == [p1]
    assert _ids(client, agent, q="黑屏", plan="standard") == [other]  # ClassMate's plan
    assert _ids(client, agent, q="black screen", assignee="me") == [p3]
    assert sorted(_ids(client, agent, q="black screen", assignee="none")) == sorted([p1, other])
    assert _ids(client, agent, assignee=world.agent_id) == [p3]
    both = _ids(client, agent, q="黑屏", priority="P1,P3", organization_id=world.liveco, channel="api")
    assert sorted(both) == sorted([p1, p3])
    assert _ids(client, agent, q="黑屏", channel="email") == []
    assert _ids(client, agent, q="黑屏", status="solved") == []
    assert sorted(_ids(client, agent, q="黑屏", status="new,open")) == sorted([p1, p3, other])
    # Dates: filed before `start + 1 s`, changed since then (the assignment), idle for 3 days.
    window = {"created_to": (start + timedelta(seconds=1)).isoformat()}
    assert sorted(_ids(client, agent, **window)) == sorted([p1, p3, other])
    assert _ids(client, agent, updated_from=(start + timedelta(days=1)).isoformat()) == [p3]
    assert sorted(_ids(client, agent, idle_days=3)) == sorted([p1, other])
    assert _ids(client, agent, created_from=(start + timedelta(days=1)).isoformat()) == []


def test_breaching_within_hours_follows_the_sla_clocks(
    client: TestClient, desk: Desk, world: World, clock: FrozenClock
) -> None:
    alice, agent = bearer(world.alice_token), bearer(world.agent_token)
    urgent = _file(client, alice, "Live stream down", "全部观众黑屏", priority="P1")
    sla = client.get(f"/api/v1/tickets/{urgent}/sla", headers=agent)
    assert sla.status_code == 200, sla.text
    dues = [datetime.fromisoformat(c["due_at"]) for c in sla.json()["clocks"] if c["state"] == "active" and c["due_at"]]
    assert dues, "the P1 ticket runs an SLA clock"
    left = (min(dues) - clock.now()).total_seconds() / 3600
    assert _ids(client, agent, breaching_within_hours=left + 0.01) == [urgent]
    assert _ids(client, agent, breaching_within_hours=left - 0.01) == []
    assert _ids(client, agent, breaching_within_hours=left + 0.01, q="whatever") == []
    clock.advance(timedelta(hours=left + 1))  # breached already: no longer "breaching within"
    assert _ids(client, agent, breaching_within_hours=1) == []


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"q": "x" * 201}, "validation"),
        ({"status": "bogus"}, "invalid-input"),
        ({"priority": "P9"}, "invalid-input"),
        ({"idle_days": 0}, "validation"),
        ({"created_from": "yesterday"}, "validation"),
        ({"breaching_within_hours": "nan"}, "validation"),
        ({"assignee": "a b"}, "validation"),
    ],
)
def test_bad_filters_are_problems(client: TestClient, world: World, params: dict[str, Any], kind: str) -> None:
    r = client.get("/api/v1/tickets", params=params, headers=bearer(world.agent_token))
    assert r.status_code == 422, r.text
    assert r.json()["type"].startswith(PROBLEM)


def test_the_follower_is_idempotent_and_catches_up_on_old_tickets(client: TestClient, desk: Desk, world: World) -> None:
    alice = bearer(world.alice_token)
    tid = _file(client, alice, "音画不同步", "lip sync drifts after 10 minutes")
    with desk.transaction() as s:
        assert search.index_pending(s, desk.clock.now()) == 1  # a ticket from before search: cut on catch-up
    with desk.transaction() as s:
        assert search.index_pending(s, desk.clock.now()) == 0
        row = s.get(TicketTextRow, tid)
        assert row is not None and "drift" in row.public_terms.split()
        first = row.public_terms
    _follow(desk)  # the follower hears the same filing again: nothing new to cut, nothing doubled
    with desk.transaction() as s:
        row = s.get(TicketTextRow, tid)
        assert row is not None and row.public_terms == first
    assert _ids(client, alice, q="音画") == [tid]


# --- saved views ---------------------------------------------------------------------------------------------


def _second_agent(desk: Desk) -> dict[str, str]:
    with desk.transaction() as s:
        li = identity.create_person(s, desk.clock, email="li@vendor.test", name="Li", role=Role.AGENT)
        return bearer(identity.create_token(s, desk.clock, person_id=li.id, name="t", scopes=DEFAULT_SCOPES).plain)


def test_views_crud_run_and_share(client: TestClient, desk: Desk, world: World) -> None:
    alice, agent, admin = bearer(world.alice_token), bearer(world.agent_token), bearer(world.admin_token)
    li = _second_agent(desk)
    p1 = _file(client, alice, "直播间卡顿严重", "全部观众", priority="P1")
    _file(client, alice, "卡顿 a little", "minor", priority="P4")
    _follow(desk)

    r = client.post("/api/v1/views", json={"name": "Unassigned P1", "query": {"priority": "P1", "assignee": "none"}})
    assert r.status_code == 401
    r = client.post(
        "/api/v1/views", json={"name": " 卡顿 P1 ", "query": {"q": "卡顿", "priority": "P1"}}, headers=agent
    )
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["name"] == "卡顿 P1" and view["shared"] is False and view["query"] == {"q": "卡顿", "priority": ["P1"]}
    assert r.headers["location"] == f"/api/v1/views/{view['id']}"
    assert [t["id"] for t in client.get(f"/api/v1/views/{view['id']}/tickets", headers=agent).json()] == [p1]

    # Personal: Li neither lists nor reaches it; sharing shows it to Li but only its owner or an admin changes it.
    assert client.get("/api/v1/views", headers=li).json() == []
    assert client.get(f"/api/v1/views/{view['id']}", headers=li).status_code == 404
    r = client.patch(f"/api/v1/views/{view['id']}", json={"shared": True, "name": "P1 卡顿"}, headers=agent)
    assert r.status_code == 200 and r.json()["shared"] is True and r.json()["name"] == "P1 卡顿"
    assert [v["id"] for v in client.get("/api/v1/views", headers=li).json()] == [view["id"]]
    assert client.patch(f"/api/v1/views/{view['id']}", json={"name": "mine"}, headers=li).status_code == 403
    assert client.delete(f"/api/v1/views/{view['id']}", headers=li).status_code == 403
    # Customers never see shared views.
    assert client.get("/api/v1/views", headers=alice).json() == []
    assert client.get(f"/api/v1/views/{view['id']}/tickets", headers=alice).status_code == 404

    r = client.patch(f"/api/v1/views/{view['id']}", json={"query": {"q": "卡顿"}}, headers=admin)
    assert r.status_code == 200 and r.json()["query"] == {"q": "卡顿"}
    assert len(client.get(f"/api/v1/views/{view['id']}/tickets", headers=agent).json()) == 2
    assert client.delete(f"/api/v1/views/{view['id']}", headers=agent).status_code == 204
    assert client.get(f"/api/v1/views/{view['id']}", headers=agent).status_code == 404


def test_a_view_runs_as_whoever_runs_it(client: TestClient, desk: Desk, world: World) -> None:
    alice, agent = bearer(world.alice_token), bearer(world.agent_token)
    li = _second_agent(desk)
    mine = _file(client, alice, "Echo on Windows", "AEC")
    client.patch(f"/api/v1/tickets/{mine}", json={"assignee_id": world.agent_id}, headers=agent)
    r = client.post(
        "/api/v1/views",
        json={"name": "My open", "shared": True, "query": {"assignee": "me", "open_only": True}},
        headers=agent,
    )
    assert r.status_code == 201, r.text
    vid = r.json()["id"]
    assert [t["id"] for t in client.get(f"/api/v1/views/{vid}/tickets", headers=agent).json()] == [mine]
    assert client.get(f"/api/v1/views/{vid}/tickets", headers=li).json() == []


def test_customers_keep_their_own_views_and_cannot_share(client: TestClient, desk: Desk, world: World) -> None:
    alice, bob = bearer(world.alice_token), bearer(world.bob_token)
    theirs = _file(client, bob, "白板", "whiteboard")
    _follow(desk)
    r = client.post("/api/v1/views", json={"name": "all", "shared": True, "query": {}}, headers=alice)
    assert r.status_code == 403
    r = client.post("/api/v1/views", json={"name": "whiteboard", "query": {"q": "whiteboard"}}, headers=alice)
    assert r.status_code == 201
    vid = r.json()["id"]
    assert client.get(f"/api/v1/views/{vid}/tickets", headers=alice).json() == []  # Bob's ticket is not hers
    assert [t["id"] for t in client.get("/api/v1/tickets", params={"q": "whiteboard"}, headers=bob).json()] == [theirs]
    assert client.patch(f"/api/v1/views/{vid}", json={"shared": True}, headers=alice).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "query": {}},
        {"name": "x" * 101, "query": {}},
        {"name": "bad", "query": {"nonsense": 1}},
        {"name": "bad", "query": {"status": ["open"] * 50}},
        {"name": "bad", "query": {"q": "x" * 500}},
        {"name": "bad", "query": {f"k{i}": 1 for i in range(30)}},
    ],
)
def test_bad_views_are_refused(client: TestClient, world: World, body: dict[str, Any]) -> None:
    r = client.post("/api/v1/views", json=body, headers=bearer(world.agent_token))
    assert r.status_code == 422, r.text
    assert client.get("/api/v1/views", headers=bearer(world.agent_token)).json() == []


# --- the agents' page ----------------------------------------------------------------------------------------


def test_search_page_finds_saves_and_runs_views(client: TestClient, desk: Desk) -> None:
    from tests.web.test_pages import _csrf, _login

    w = build_world(desk, passwords=True)
    alice = bearer(w.alice_token)
    lag = _file(client, alice, "直播间卡顿严重", "观众反馈", priority="P1")
    _file(client, alice, "Invoice copy", "need a PDF", priority="P4")
    _follow(desk)
    _login(client, "agent@vendor.test")
    queue = client.get("/agent/queue")
    assert 'action="/agent/tickets"' in queue.text
    page = client.get("/agent/tickets", params={"q": "卡顿"})
    assert page.status_code == 200 and "直播间卡顿严重" in page.text and "Invoice copy" not in page.text
    r = client.post(
        "/agent/views",
        data={"name": "Lag", "q": "卡顿", "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    view = client.get(r.headers["location"])
    assert "直播间卡顿严重" in view.text and ">Lag<" in view.text
    preset = client.get("/agent/tickets", params={"preset": "unassigned-p1"})
    assert f"/tickets/{lag}" in preset.text and "Invoice copy" not in preset.text
    assert client.get("/agent/tickets", params={"status": "bogus"}).status_code == 400


def test_search_page_is_for_agents(client: TestClient, desk: Desk) -> None:
    from tests.web.test_pages import _login

    build_world(desk, passwords=True)
    _login(client, "alice@liveco.test")
    assert client.get("/agent/tickets", params={"q": "x"}, headers={"accept": "text/html"}).status_code == 403


def test_zhiban_tickets_reindex_cuts_tickets_filed_before_search(client: TestClient, desk: Desk, world: World) -> None:
    import os

    from tests.zhiban_cli import zhiban

    alice = bearer(world.alice_token)
    first = _file(client, alice, "屏幕共享模糊", "screen share is blurry")
    second = _file(client, alice, "Echo on Windows", "回声")
    ran = zhiban("tickets", "reindex", "--batch", "1", env={**os.environ, "ZHIBAN_DATABASE_URL": str(desk.db.url)})
    assert ran.returncode == 0, ran.stderr
    assert "2 tickets cut" in ran.stdout
    assert _ids(client, alice, q="屏幕共享") == [first]
    assert _ids(client, alice, q="回声") == [second]
    again = zhiban("tickets", "reindex", env={**os.environ, "ZHIBAN_DATABASE_URL": str(desk.db.url)})
    assert again.returncode == 0 and "0 tickets cut" in again.stdout


def test_a_search_through_the_recent_window_still_finds_older_tickets(
    client: TestClient, desk: Desk, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL looks through the newest tickets first (RECENT_WINDOW); a page it does not fill is completed from
    all tickets, so an old ticket is never lost (SQLite searches in one pass)."""
    monkeypatch.setattr(search, "RECENT_WINDOW", 1)
    alice = bearer(world.alice_token)
    old = _file(client, alice, "耳机模式下声音小", "headset volume low")
    middle = _file(client, alice, "Question", "耳机 works, 声音 fine")
    new = _file(client, alice, "Recording", "cloud recording missing")
    _follow(desk)
    assert _ids(client, alice, q="耳机 声音") == [old, middle]  # the subject hit first
    assert _ids(client, alice, q="headset") == [old]
    assert _ids(client, alice, q="recording") == [new]
    assert _ids(client, alice, q="耳机", limit=1) == [old]
