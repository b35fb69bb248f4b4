"""Browser hardening headers on pages, API answers, errors, static files and the one-click acknowledge page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.tenancy import bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.incidents.model import make_ack_token


def _hardened(response: object, referrer: str = "same-origin") -> None:
    headers = response.headers  # type: ignore[attr-defined]
    csp = headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'",
                      "base-uri 'self'", "form-action 'self'"):  # fmt: skip
        assert directive in csp, (directive, csp)
    assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == referrer


@pytest.mark.parametrize(
    "path",
    ["/login", "/status", "/help", "/api/v1/me", "/api/v1/nothing-here", "/healthz", "/static/app.css", "/nowhere"],
)
def test_every_answer_carries_the_headers(client: TestClient, path: str) -> None:
    _hardened(client.get(path, headers={"accept": "text/html"}, follow_redirects=False))


def test_api_answers_and_writes_carry_the_headers(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    created = client.post("/api/v1/tickets", json={"subject": "No audio", "body": "iOS"}, headers=bearer(w.alice_token))
    assert created.status_code == 201
    _hardened(created)
    _hardened(client.post("/api/v1/tickets", json={"subject": ""}, headers=bearer(w.alice_token)))  # a 422


def test_ack_pages_send_no_referrer(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    w = build_world(desk)
    token = make_ack_token(desk.secret_key, "no-such-incident", w.agent_id, clock.now() + timedelta(hours=1))
    # The token is the credential: a link on the page must not carry it off in a Referer header.
    _hardened(client.get(f"/ack/{token}"), referrer="no-referrer")
    _hardened(client.post(f"/ack/{token}"), referrer="no-referrer")
    _hardened(client.get("/status/subscriptions/" + "a" * 32 + "/confirm"), referrer="no-referrer")


def test_api_docs_load_nothing_from_elsewhere_and_run_no_inline_script(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == client.get("/login").headers["content-security-policy"]
    assert "'unsafe-inline'" not in docs.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", docs.text, re.S)
    assert scripts and all(body.strip() == "" and 'src="/static/' in attrs for attrs, body in scripts)
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text):
        assert client.get(asset).status_code == 200, asset
    assert "http" not in docs.text.replace('"/openapi.json"', "")  # no other origin named


def test_metrics_are_off_unless_a_token_is_set(client: TestClient, desk: Desk) -> None:
    assert desk.settings.metrics_token == ""  # the default: nothing exposed
    off = client.get("/metrics", headers=bearer("anything"))
    assert off.status_code == 404 and off.json()["type"] == "https://zhiban.dev/problems/not-found"
    assert "zhiban_http_requests_total" not in off.text
    desk.settings.metrics_token = "scrape-token-123"
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["type"] == "https://zhiban.dev/problems/unauthorized"
    assert client.get("/metrics", headers=bearer("scrape-token-12")).status_code == 401
    assert client.get("/metrics", headers={"authorization": "Basic c2NyYXBlLXRva2VuLTEyMw=="}).status_code == 401
    ok = client.get("/metrics", headers=bearer("scrape-token-123"))
    assert ok.status_code == 200 and "zhiban_http_requests_total" in ok.text
