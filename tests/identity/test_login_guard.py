"""Sign-in guards: login and logout need CSRF tokens; failures are budgeted per e-mail x client in the database."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.tenancy import PASSWORD, build_world, web_login
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.identity import ratelimit
from zhiban.identity.ratelimit import LOGIN_CLIENT, LOGIN_PAIR
from zhiban.store.db import make_engine
from zhiban.web.app import create_app

ATTACKER = ("203.0.113.7", 40000)
VICTIM = ("198.51.100.20", 40001)


@pytest.fixture
def two_clients(app: FastAPI) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(app, client=ATTACKER) as a, TestClient(app, client=VICTIM) as b:
        yield a, b


def _queue_status(client: TestClient) -> int:
    return client.get("/agent/queue", headers={"accept": "text/html"}, follow_redirects=False).status_code


def test_login_without_its_csrf_token_is_refused(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    # A cross-site form (no cookie, no token) cannot sign the browser in to the attacker's account.
    bare = client.post("/login", data={"email": "agent@vendor.test", "password": PASSWORD}, follow_redirects=False)
    assert bare.status_code == 403 and "zhiban_session" not in client.cookies
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token and client.cookies.get("zhiban_login_csrf")
    forged = client.post(
        "/login",
        data={"email": "agent@vendor.test", "password": PASSWORD, "csrf_token": "0" * 64},
        follow_redirects=False,
    )
    assert forged.status_code == 403 and "zhiban_session" not in client.cookies
    # The token is bound to this browser's cookie: another nonce with the same token fails.
    client.cookies.set("zhiban_login_csrf", "x" * 32, path="/login")
    swapped = client.post(
        "/login",
        data={"email": "agent@vendor.test", "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert swapped.status_code == 403
    # The refusal page carries a fresh form that works.
    assert web_login(client, "agent@vendor.test").status_code == 303
    assert _queue_status(client) == 200


def test_logout_without_csrf_token_keeps_the_session(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    assert web_login(client, "agent@vendor.test").status_code == 303
    refused = client.post("/logout", follow_redirects=False)
    assert refused.status_code == 403
    assert _queue_status(client) == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/agent/queue").text)
    assert token
    assert client.post("/logout", data={"csrf_token": token.group(1)}, follow_redirects=False).status_code == 303
    assert _queue_status(client) == 303


def test_lockout_hits_the_attacking_client_only(
    two_clients: tuple[TestClient, TestClient], desk: Desk, clock: FrozenClock
) -> None:
    attacker, victim = two_clients
    build_world(desk, passwords=True)
    for _ in range(LOGIN_PAIR.limit):
        assert web_login(attacker, "alice@liveco.test", "wrong-password").status_code == 401
    # The attacker is locked out of alice even with her password ...
    assert web_login(attacker, "alice@liveco.test").status_code == 429
    # ... but alice, from her own network, signs in.
    assert web_login(victim, "alice@liveco.test").status_code == 303
    # The window ends and the attacker may try again.
    clock.advance(LOGIN_PAIR.window + timedelta(seconds=1))
    assert web_login(attacker, "alice@liveco.test", "wrong-password").status_code == 401


def test_one_client_is_capped_over_many_emails(two_clients: tuple[TestClient, TestClient], desk: Desk) -> None:
    attacker, victim = two_clients
    build_world(desk, passwords=True)
    for n in range(LOGIN_CLIENT.limit):
        assert web_login(attacker, f"user{n}@stuffing.test", "guess-password").status_code == 401
    # Credential stuffing slows to a stop: even a right password from that client waits out the window.
    assert web_login(attacker, "agent@vendor.test").status_code == 429
    assert web_login(victim, "agent@vendor.test").status_code == 303


def test_two_web_processes_share_one_budget(desk: Desk, clock: FrozenClock) -> None:
    build_world(desk, passwords=True)
    # A second desk and app on the same database: a second web node behind the same load balancer.
    other = Desk(settings=desk.settings, clock=clock, engine=make_engine(str(desk.db.url)), secret_key=desk.secret_key)
    try:
        with (
            TestClient(create_app(desk), client=ATTACKER) as one,
            TestClient(create_app(other), client=ATTACKER) as two,
        ):
            for n in range(LOGIN_PAIR.limit):
                node = one if n % 2 == 0 else two
                assert web_login(node, "agent@vendor.test", "wrong-password").status_code == 401
            assert web_login(one, "agent@vendor.test").status_code == 429
            assert web_login(two, "agent@vendor.test").status_code == 429
    finally:
        other.db.dispose()


def test_hits_are_counted_atomically_across_connections(desk: Desk, clock: FrozenClock) -> None:
    limit = ratelimit.Limit("test.race", 1000, timedelta(minutes=5))
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(10):
                with desk.transaction() as s:
                    ratelimit.hit(s, limit, "k", clock.now())
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with desk.transaction() as s:
        assert ratelimit.used(s, limit, "k", clock.now()) == 60
        clock.advance(limit.window)
        assert ratelimit.used(s, limit, "k", clock.now()) == 0
        assert ratelimit.hit(s, limit, "k", clock.now()) == 1  # a new window starts at one


def test_stale_rows_are_pruned(desk: Desk, clock: FrozenClock) -> None:
    limit = ratelimit.Limit("test.prune", 5, timedelta(minutes=1))
    with desk.transaction() as s:
        ratelimit.hit(s, limit, "old", clock.now())
    clock.advance(ratelimit.STALE_AFTER + timedelta(minutes=2))
    with desk.transaction() as s:
        ratelimit.hit(s, limit, "new", clock.now())
    with desk.transaction() as s:
        from sqlalchemy import select

        from zhiban.identity.store import RateCountRow

        assert set(s.scalars(select(RateCountRow.key).where(RateCountRow.scope == limit.scope))) == {"new"}


@pytest.mark.parametrize(
    ("host", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # the same /64: one budget
        ("::ffff:198.51.100.1", "198.51.100.1"),
        (None, "?"),
    ],
)
def test_client_of_groups_an_ipv6_host(host: str | None, client: str) -> None:
    assert ratelimit.client_of(host) == client
