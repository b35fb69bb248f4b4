"""Tenant isolation over the API: a customer of one organization never reads or changes another's data.

Every API route must appear in ISOLATION_CASES; the guard test fails when a new route is added without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from tests.tenancy import World, bearer, build_world
from zhiban.apps import service as apps
from zhiban.desk import Desk
from zhiban.tickets import search


@dataclass
class Fixture:
    world: World
    liveco_ticket: int
    alice_token_id: str
    liveco_attachment: Callable[[], str]  # uploads a file of LiveCo's on another ticket when a case asks: its URL
    bob_ticket: int = 0
    liveco_app: str = "liveco-live"
    alice_view: int = 0


def _attachment_maker(client: TestClient, world: World) -> Callable[[], str]:
    def make() -> str:
        ticket = client.post(
            "/api/v1/tickets", json={"subject": "logs", "body": "see file"}, headers=bearer(world.alice_token)
        ).json()["id"]
        files = {"file": ("liveco.log", b"LiveCo secret details in a log", "text/plain")}
        answer = client.post(f"/api/v1/tickets/{ticket}/attachments", files=files, headers=bearer(world.alice_token))
        assert answer.status_code == 201, answer.text
        return str(answer.json()["url"])

    return make


@dataclass
class Case:
    method: str
    path: str  # route template
    request: Callable[[Fixture], tuple[str, dict[str, Any] | None]]  # (concrete path, json body) for Bob
    allowed: frozenset[int] = frozenset({403, 404})
    # After the attempt: an assertion that LiveCo's data is unchanged / not leaked.
    check: Callable[[TestClient, Fixture, Any], None] | None = None


def _no_liveco_data(client: TestClient, fx: Fixture, response: Any) -> None:
    text = response.text
    assert "LiveCo" not in text and fx.world.liveco not in text and "alice@liveco" not in text


def _ticket_unchanged(client: TestClient, fx: Fixture, response: Any) -> None:
    t = client.get(f"/api/v1/tickets/{fx.liveco_ticket}", headers=bearer(fx.world.agent_token)).json()
    assert t["status"] == "new" and t["priority"] == "P1" and len(t["comments"]) == 1


def _not_paged(client: TestClient, fx: Fixture, response: Any) -> None:
    _ticket_unchanged(client, fx, response)
    t = client.get(f"/api/v1/tickets/{fx.liveco_ticket}", headers=bearer(fx.world.agent_token)).json()
    assert t["on_duty"] is None


def _ticket_unowned(client: TestClient, fx: Fixture, response: Any) -> None:
    _ticket_unchanged(client, fx, response)
    t = client.get(f"/api/v1/tickets/{fx.liveco_ticket}", headers=bearer(fx.world.agent_token)).json()
    assert t["assignee"] is None and t["tags"] == ["vip"] and t["followers"] == []
    assert t["related"] == [] and t["merged_into"] is None and t["merged_from"] == []


def _ticket_fields_unchanged(client: TestClient, fx: Fixture, response: Any) -> None:
    _ticket_unowned(client, fx, response)
    t = client.get(f"/api/v1/tickets/{fx.liveco_ticket}", headers=bearer(fx.world.agent_token)).json()
    assert t["fields"]["channel_name"] == "liveco-room" and t["fields"]["app_id"] == fx.liveco_app


def _empty_list(client: TestClient, fx: Fixture, response: Any) -> None:
    assert response.json() == []


def _alice_view_unchanged(client: TestClient, fx: Fixture, response: Any) -> None:
    _no_liveco_data(client, fx, response)
    view = client.get(f"/api/v1/views/{fx.alice_view}", headers=bearer(fx.world.alice_token))
    assert view.status_code == 200 and view.json()["name"] == "LiveCo outages"
    assert view.json()["query"] == {"q": "outage", "priority": ["P1"]}


def _no_shared_view(client: TestClient, fx: Fixture, response: Any) -> None:
    views = client.get("/api/v1/views", headers=bearer(fx.world.agent_token)).json()
    assert [v["name"] for v in views] == []


def _contacts_unchanged(client: TestClient, fx: Fixture, response: Any) -> None:
    org = client.get(f"/api/v1/organizations/{fx.world.liveco}", headers=bearer(fx.world.agent_token)).json()
    assert org["dedicated_contact_id"] is None


ISOLATION_CASES = [
    Case("GET", "/api/v1/tickets/{ticket_id}", lambda f: (f"/api/v1/tickets/{f.liveco_ticket}", None)),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/comments",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/comments", {"body": "hi"}),
        check=_ticket_unchanged,
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/status",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/status", {"status": "solved"}),
        check=_ticket_unchanged,
    ),
    Case(
        "PATCH",
        "/api/v1/tickets/{ticket_id}",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}", {"priority": "P4"}),
        check=_ticket_unchanged,
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/urgent",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/urgent", {"note": "wake them"}),
        check=_not_paged,
    ),
    Case(
        "PATCH",
        "/api/v1/tickets/{ticket_id}",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}", {"fields": {"channel_name": "evil"}}),
        check=_ticket_fields_unchanged,
    ),
    Case(
        "PATCH",
        "/api/v1/tickets/{ticket_id}",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}", {"assignee_id": f.world.agent_id}),
        check=_ticket_unowned,
    ),
    # Bob's own ticket may not name LiveCo's app (it reads as unknown to him: no existence leak).
    Case(
        "PATCH",
        "/api/v1/tickets/{ticket_id}",
        lambda f: (f"/api/v1/tickets/{f.bob_ticket}", {"fields": {"app_id": f.liveco_app}}),
        frozenset({422}),
    ),
    Case(
        "POST",
        "/api/v1/tickets",
        lambda f: ("/api/v1/tickets", {"subject": "s", "body": "b", "fields": {"app_id": f.liveco_app}}),
        frozenset({422}),
    ),
    Case(
        "GET",
        "/api/v1/tickets",
        lambda f: (f"/api/v1/tickets?app_id={f.liveco_app}", None),
        frozenset({200}),
        lambda client, fx, r: _empty_list(client, fx, r),
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/take",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/take", None),
        check=_ticket_unowned,
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/auto-assign",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/auto-assign", None),
        check=_ticket_unowned,
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/followers",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/followers", {}),
        check=_ticket_unowned,
    ),
    Case(
        "DELETE",
        "/api/v1/tickets/{ticket_id}/followers/{person_id}",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/followers/{f.world.agent_id}", None),
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/tags",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/tags", {"tags": ["evil"]}),
        check=_ticket_unowned,
    ),
    Case(
        "DELETE",
        "/api/v1/tickets/{ticket_id}/tags/{tag}",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/tags/vip", None),
        check=_ticket_unowned,
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/links",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/links", {"ticket_id": f.bob_ticket}),
        check=_ticket_unowned,
    ),
    # From his own ticket to LiveCo's: as if LiveCo's did not exist.
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/links",
        lambda f: (f"/api/v1/tickets/{f.bob_ticket}/links", {"ticket_id": f.liveco_ticket}),
        frozenset({404}),
        check=_ticket_unowned,
    ),
    Case(
        "DELETE",
        "/api/v1/tickets/{ticket_id}/links/{other_id}",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/links/{f.bob_ticket}", None),
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/merge",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/merge", {"into": f.bob_ticket}),
        check=_ticket_unowned,
    ),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/merge",
        lambda f: (f"/api/v1/tickets/{f.bob_ticket}/merge", {"into": f.liveco_ticket}),
        check=_ticket_unowned,
    ),
    Case("GET", "/api/v1/tickets/{ticket_id}/events", lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/events", None)),
    Case(
        "PUT",
        "/api/v1/organizations/{organization_id}/contacts",
        lambda f: (f"/api/v1/organizations/{f.world.liveco}/contacts", {"dedicated_contact_id": f.world.agent_id}),
        check=_contacts_unchanged,
    ),
    # Attachments: Bob can neither add a file to LiveCo's ticket nor fetch one of LiveCo's (random ids, 404).
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/attachments",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/attachments", None),
        check=_ticket_unchanged,
    ),
    Case(
        "GET",
        "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}",
        lambda f: (f.liveco_attachment(), None),
        check=_no_liveco_data,
    ),
    # Listing answers 200 but with Bob's own data only.
    Case("GET", "/api/v1/tickets", lambda f: ("/api/v1/tickets", None), frozenset({200}), _no_liveco_data),
    Case(
        "GET",
        "/api/v1/tickets",
        lambda f: (f"/api/v1/tickets?organization_id={f.world.liveco}", None),
        frozenset({200}),
        _no_liveco_data,
    ),
    Case(
        "POST",
        "/api/v1/tickets",
        lambda f: ("/api/v1/tickets", {"subject": "s", "body": "b", "requester_id": f.world.alice_id}),
    ),
    # Search: Bob's words find only ClassMate's tickets, whichever organization he names (LiveCo's is indexed).
    Case(
        "GET",
        "/api/v1/tickets",
        lambda f: ("/api/v1/tickets?q=secret details", None),
        frozenset({200}),
        _no_liveco_data,
    ),
    Case(
        "GET",
        "/api/v1/tickets",
        lambda f: (f"/api/v1/tickets?q=outage&organization_id={f.world.liveco}&plan=enterprise", None),
        frozenset({200}),
        _no_liveco_data,
    ),
    # Saved views: Bob lists only his own, never reaches Alice's, and may not share one with the agents.
    Case("GET", "/api/v1/views", lambda f: ("/api/v1/views", None), frozenset({200}), _no_liveco_data),
    Case(
        "POST",
        "/api/v1/views",
        lambda f: ("/api/v1/views", {"name": "all of it", "shared": True, "query": {}}),
        frozenset({403}),
        _no_shared_view,
    ),
    Case(
        "GET", "/api/v1/views/{view_id}", lambda f: (f"/api/v1/views/{f.alice_view}", None), check=_alice_view_unchanged
    ),
    Case(
        "PATCH",
        "/api/v1/views/{view_id}",
        lambda f: (f"/api/v1/views/{f.alice_view}", {"name": "mine now", "query": {}}),
        check=_alice_view_unchanged,
    ),
    Case(
        "DELETE",
        "/api/v1/views/{view_id}",
        lambda f: (f"/api/v1/views/{f.alice_view}", None),
        check=_alice_view_unchanged,
    ),
    Case(
        "GET",
        "/api/v1/views/{view_id}/tickets",
        lambda f: (f"/api/v1/views/{f.alice_view}/tickets", None),
        check=_alice_view_unchanged,
    ),
    Case("GET", "/api/v1/organizations", lambda f: ("/api/v1/organizations", None), frozenset({200}), _no_liveco_data),
    Case("GET", "/api/v1/organizations/{organization_id}", lambda f: (f"/api/v1/organizations/{f.world.liveco}", None)),
    Case(
        "POST",
        "/api/v1/organizations",
        lambda f: ("/api/v1/organizations", {"name": "x", "slug": "xx"}),
    ),
    Case("GET", "/api/v1/people", lambda f: ("/api/v1/people", None), frozenset({200}), _no_liveco_data),
    Case(
        "POST",
        "/api/v1/people",
        lambda f: (
            "/api/v1/people",
            {"email": "evil@x.test", "name": "e", "role": "customer", "organization_id": f.world.liveco},
        ),
    ),
    Case("DELETE", "/api/v1/tokens/{token_id}", lambda f: (f"/api/v1/tokens/{f.alice_token_id}", None)),
    # Bob's own identity and his own tokens are his to see and make.
    Case("GET", "/api/v1/me", lambda f: ("/api/v1/me", None), frozenset({200}), _no_liveco_data),
    Case("POST", "/api/v1/tokens", lambda f: ("/api/v1/tokens", {"name": "mine"}), frozenset({201}), _no_liveco_data),
    # Customer apps: Bob lists only ClassMate's, cannot register or re-key one for LiveCo.
    Case("GET", "/api/v1/apps", lambda f: ("/api/v1/apps", None), frozenset({200}), _no_liveco_data),
    Case(
        "GET",
        "/api/v1/apps",
        lambda f: (f"/api/v1/apps?organization_id={f.world.liveco}", None),
        frozenset({200}),
        _no_liveco_data,
    ),
    Case(
        "POST",
        "/api/v1/apps",
        lambda f: ("/api/v1/apps", {"app_id": "liveco-evil", "organization_id": f.world.liveco}),
    ),
    Case("POST", "/api/v1/apps/{app_id}/rotate-key", lambda f: ("/api/v1/apps/liveco/rotate-key", None)),
    # Telemetry ingest takes an app's ingest key only: a person's API token is refused.
    Case(
        "POST",
        "/api/v1/telemetry",
        lambda f: ("/api/v1/telemetry", [{"v": 1, "app_id": "liveco", "ts": 1, "session_id": "s"}]),
        frozenset({401}),
    ),
    # Incidents: alert intake is keyed by integration secrets, the rest is staff-only or org-scoped.
    Case(
        "POST",
        "/v2/enqueue",
        lambda f: ("/v2/enqueue", {"routing_key": "0" * 32, "event_action": "trigger"}),
        frozenset({400}),
    ),
    Case(
        "POST",
        "/api/v1/integrations/alertmanager/{key}",
        lambda f: ("/api/v1/integrations/alertmanager/not-a-key", {}),
        frozenset({404}),
    ),
    Case(
        "POST",
        "/api/v1/integrations/webhook/{key}",
        lambda f: ("/api/v1/integrations/webhook/not-a-key", {}),
        frozenset({404}),
    ),
    Case("POST", "/api/v1/heartbeats/{key}", lambda f: ("/api/v1/heartbeats/not-a-key", None), frozenset({404})),
    Case("GET", "/api/v1/incidents", lambda f: ("/api/v1/incidents", None), frozenset({200}), _no_liveco_data),
    Case("GET", "/api/v1/incidents/{incident_id}", lambda f: ("/api/v1/incidents/no-such-incident", None)),
    Case("POST", "/api/v1/incidents/{incident_id}/acknowledge", lambda f: ("/api/v1/incidents/x/acknowledge", None)),
    Case("POST", "/api/v1/incidents/{incident_id}/resolve", lambda f: ("/api/v1/incidents/x/resolve", None)),
    Case("POST", "/api/v1/incidents/{incident_id}/notes", lambda f: ("/api/v1/incidents/x/notes", {"body": "n"})),
    Case(
        "POST",
        "/api/v1/incidents/{incident_id}/responders",
        lambda f: ("/api/v1/incidents/x/responders", {"person": f.world.agent_id}),
    ),
    Case("GET", "/api/v1/escalation-policies", lambda f: ("/api/v1/escalation-policies", None)),
    Case(
        "POST",
        "/api/v1/escalation-policies",
        lambda f: (
            "/api/v1/escalation-policies",
            {"name": "p", "levels": [{"delay_minutes": 5, "targets": [{"kind": "person", "ref": f.world.agent_id}]}]},
        ),
    ),
    Case(
        "PUT",
        "/api/v1/escalation-policies/{policy_id}",
        lambda f: (
            "/api/v1/escalation-policies/" + "a" * 32,
            {"name": "p", "levels": [{"delay_minutes": 5, "targets": [{"kind": "person", "ref": f.world.agent_id}]}]},
        ),
    ),
    Case(
        "DELETE", "/api/v1/escalation-policies/{policy_id}", lambda f: ("/api/v1/escalation-policies/" + "a" * 32, None)
    ),
    Case("GET", "/api/v1/incident-services", lambda f: ("/api/v1/incident-services", None)),
    Case(
        "PUT",
        "/api/v1/incident-services/{service_id}",
        lambda f: ("/api/v1/incident-services/" + "a" * 32, {"name": "s"}),
    ),
    Case("POST", "/api/v1/incident-services", lambda f: ("/api/v1/incident-services", {"name": "s"})),
    Case("GET", "/api/v1/integrations", lambda f: ("/api/v1/integrations", None)),
    Case(
        "POST",
        "/api/v1/integrations",
        lambda f: ("/api/v1/integrations", {"type": "events-v2", "service": "LiveCo app"}),
    ),
    Case("GET", "/api/v1/contact-methods", lambda f: (f"/api/v1/contact-methods?person_id={f.world.alice_id}", None)),
    Case(
        "POST",
        "/api/v1/contact-methods",
        lambda f: (
            "/api/v1/contact-methods",
            {"channel": "email", "config": {"to": ["x@y.test"]}, "person_id": f.world.alice_id},
        ),
    ),
    Case("GET", "/api/v1/notification-rules", lambda f: ("/api/v1/notification-rules", None)),
    Case(
        "POST",
        "/api/v1/notification-rules",
        lambda f: ("/api/v1/notification-rules", {"contact_method_id": "x", "person_id": f.world.alice_id}),
    ),
    Case("GET", "/api/v1/notifications", lambda f: ("/api/v1/notifications?subject_id=x", None)),
    # Knowledge base: internal articles never reach customers; writes are for staff.
    Case(
        "GET",
        "/api/v1/kb/search",
        lambda f: ("/api/v1/kb/search?q=zorbleflux", None),
        frozenset({200}),
        lambda c, f, r: __import__("tests.kb.isolation_kb", fromlist=["x"]).internal_hidden(c, f, r),
    ),
    Case(
        "GET",
        "/api/v1/kb/articles/{article_id}",
        lambda f: ("/api/v1/kb/articles/999999", None),
        check=lambda c, f, r: __import__("tests.kb.isolation_kb", fromlist=["x"]).internal_hidden(c, f, r),
    ),
    Case(
        "POST",
        "/api/v1/kb/articles",
        lambda f: ("/api/v1/kb/articles", {"title": "LiveCo", "body": "b", "language": "en"}),
        frozenset({403}),
    ),
    Case(
        "PUT",
        "/api/v1/kb/articles/{article_id}",
        lambda f: ("/api/v1/kb/articles/1", {"title": "x", "body": "b", "language": "en"}),
        frozenset({403}),
    ),
    Case(
        "POST",
        "/api/v1/kb/articles/{article_id}/vote",
        lambda f: ("/api/v1/kb/articles/999999/vote", {"helpful": True}),
        check=lambda c, f, r: __import__("tests.kb.isolation_kb", fromlist=["x"]).vote_refused(c, f, r),
    ),
    Case(
        "POST",
        "/api/v1/kb/deflections",
        lambda f: ("/api/v1/kb/deflections", {"query": "q", "article_id": 999999}),
        check=lambda c, f, r: __import__("tests.kb.isolation_kb", fromlist=["x"]).deflection_refused(c, f, r),
    ),
    # Triage is for agents: a customer reads no ticket's triage, let alone another tenant's.
    Case("GET", "/api/v1/tickets/{ticket_id}/triage", lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/triage", None)),
    Case(
        "POST",
        "/api/v1/tickets/{ticket_id}/triage",
        lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/triage", {"domain": "billing_account"}),
        check=lambda c, f, r: __import__("tests.kb.isolation_kb", fromlist=["x"]).triage_unchanged(c, f, r),
    ),
    # On-call schedules are the vendor's own: customers reach none of them (a real schedule: tests/oncall).
    Case("GET", "/api/v1/schedules", lambda f: ("/api/v1/schedules", None), frozenset({403})),
    Case(
        "POST",
        "/api/v1/schedules",
        lambda f: ("/api/v1/schedules", {"name": "LiveCo night", "zone": "UTC"}),
        frozenset({403}),
        lambda c, f, r: __import__("tests.oncall.oncall_kit", fromlist=["x"]).no_schedules(c, f, r),
    ),
    Case("GET", "/api/v1/schedules/{schedule_id}", lambda f: ("/api/v1/schedules/" + "a" * 32, None)),
    Case("DELETE", "/api/v1/schedules/{schedule_id}", lambda f: ("/api/v1/schedules/" + "a" * 32, None)),
    Case(
        "PATCH",
        "/api/v1/schedules/{schedule_id}",
        lambda f: ("/api/v1/schedules/" + "a" * 32, {"name": "x"}),
    ),
    Case(
        "POST",
        "/api/v1/schedules/{schedule_id}/layers",
        lambda f: (
            "/api/v1/schedules/" + "a" * 32 + "/layers",
            {"name": "l", "participants": [f.world.bob_id], "rotation_start": "2026-11-16T01:00:00Z"},
        ),
    ),
    Case(
        "PUT",
        "/api/v1/schedules/{schedule_id}/layers/{layer_id}",
        lambda f: (
            "/api/v1/schedules/" + "a" * 32 + "/layers/" + "b" * 32,
            {"name": "l", "participants": [f.world.bob_id], "rotation_start": "2026-11-16T01:00:00Z"},
        ),
    ),
    Case(
        "DELETE",
        "/api/v1/schedules/{schedule_id}/layers/{layer_id}",
        lambda f: ("/api/v1/schedules/" + "a" * 32 + "/layers/" + "b" * 32, None),
    ),
    Case(
        "POST",
        "/api/v1/schedules/{schedule_id}/overrides",
        lambda f: (
            "/api/v1/schedules/" + "a" * 32 + "/overrides",
            {"person_id": f.world.bob_id, "start": "2026-11-21T00:00:00Z", "end": "2026-11-21T06:00:00Z"},
        ),
    ),
    Case(
        "DELETE",
        "/api/v1/schedules/{schedule_id}/overrides/{override_id}",
        lambda f: ("/api/v1/schedules/" + "a" * 32 + "/overrides/1", None),
    ),
    Case(
        "GET",
        "/api/v1/schedules/{schedule_id}/shifts",
        lambda f: ("/api/v1/schedules/" + "a" * 32 + "/shifts", None),
    ),
    Case(
        "POST",
        "/api/v1/schedules/{schedule_id}/ical-token",
        lambda f: ("/api/v1/schedules/" + "a" * 32 + "/ical-token", None),
    ),
    Case("GET", "/api/v1/oncall/me", lambda f: ("/api/v1/oncall/me", None), frozenset({403})),
    Case("POST", "/api/v1/oncall/me/ical-token", lambda f: ("/api/v1/oncall/me/ical-token", None), frozenset({403})),
    # SLA: a ticket's clocks are its tenant's; plans, policy and calendars are the vendor's (staff read, admins edit).
    Case("GET", "/api/v1/tickets/{ticket_id}/sla", lambda f: (f"/api/v1/tickets/{f.liveco_ticket}/sla", None)),
    Case(
        "POST",
        "/api/v1/sla/preview",
        lambda f: (
            "/api/v1/sla/preview",
            {
                "plan": "standard",
                "priority": "P2",
                "country": "CN",
                "tz": "Asia/Shanghai",
                "at": "2026-10-09T17:50:00+08:00",
            },
        ),
        frozenset({200}),
        _no_liveco_data,
    ),
    Case("GET", "/api/v1/sla/plans", lambda f: ("/api/v1/sla/plans", None), frozenset({403})),
    Case("GET", "/api/v1/sla/plans/{key}", lambda f: ("/api/v1/sla/plans/enterprise", None), frozenset({403})),
    Case(
        "PUT",
        "/api/v1/sla/plans/{key}",
        lambda f: ("/api/v1/sla/plans/enterprise", {"targets": {"P1": []}}),
        frozenset({403}),
        _ticket_unchanged,
    ),
    Case("DELETE", "/api/v1/sla/plans/{key}", lambda f: ("/api/v1/sla/plans/enterprise", None), frozenset({403})),
    Case("GET", "/api/v1/sla/policy", lambda f: ("/api/v1/sla/policy", None), frozenset({403})),
    Case(
        "POST",
        "/api/v1/sla/policy/rules",
        lambda f: ("/api/v1/sla/policy/rules", {"name": "x", "targets": [{"metric": "resolution", "minutes": 1}]}),
        frozenset({403}),
    ),
    Case(
        "PATCH",
        "/api/v1/sla/policy/rules/{rule_id}",
        lambda f: ("/api/v1/sla/policy/rules/1", {"name": "y"}),
        frozenset({403}),
    ),
    Case(
        "DELETE", "/api/v1/sla/policy/rules/{rule_id}", lambda f: ("/api/v1/sla/policy/rules/1", None), frozenset({403})
    ),
    Case("PUT", "/api/v1/sla/policy/order", lambda f: ("/api/v1/sla/policy/order", {"rule_ids": []}), frozenset({403})),
    Case(
        "PUT",
        "/api/v1/sla/organizations/{organization_id}/calendar",
        lambda f: (f"/api/v1/sla/organizations/{f.world.liveco}/calendar", {"calendar_id": "x"}),
        frozenset({403}),
    ),
    Case(
        "GET",
        "/api/v1/sla/notifications",
        lambda f: ("/api/v1/sla/notifications", None),
        frozenset({200}),
        _no_liveco_data,
    ),
    Case(
        "POST", "/api/v1/sla/notifications/{notification_id}/read", lambda f: ("/api/v1/sla/notifications/1/read", None)
    ),
    # The inbox is the caller's own: Bob (a customer) has none, and cannot mark anyone's read.
    Case("GET", "/api/v1/inbox", lambda f: ("/api/v1/inbox", None), frozenset({200}), _no_liveco_data),
    Case("POST", "/api/v1/inbox/read", lambda f: ("/api/v1/inbox/read", None), frozenset({200}), _no_liveco_data),
    Case("POST", "/api/v1/inbox/{notice_id}/read", lambda f: ("/api/v1/inbox/1/read", None)),
    Case("GET", "/api/v1/calendars", lambda f: ("/api/v1/calendars", None), frozenset({403})),
    Case("POST", "/api/v1/calendars", lambda f: ("/api/v1/calendars", {"name": "x", "tz": "UTC"}), frozenset({403})),
    Case("GET", "/api/v1/calendars/{calendar_id}", lambda f: ("/api/v1/calendars/x", None), frozenset({403})),
    Case(
        "PATCH", "/api/v1/calendars/{calendar_id}", lambda f: ("/api/v1/calendars/x", {"tz": "UTC"}), frozenset({403})
    ),
    Case("DELETE", "/api/v1/calendars/{calendar_id}", lambda f: ("/api/v1/calendars/x", None), frozenset({403})),
    Case(
        "POST", "/api/v1/calendars/{calendar_id}/ical", lambda f: ("/api/v1/calendars/x/ical", None), frozenset({403})
    ),
    # Reports: a customer reads figures of its own organization only; naming another is "not found".
    Case(
        "GET",
        "/api/v1/reports/{figure}",
        lambda f: (f"/api/v1/reports/first_response?organization_id={f.world.liveco}", None),
        frozenset({404}),
    ),
    Case(
        "GET",
        "/api/v1/reports/{figure}",
        lambda f: ("/api/v1/reports/backlog", None),
        frozenset({200}),
        _no_liveco_data,
    ),
    Case(
        "GET",
        "/api/v1/reports/{figure}.csv",
        lambda f: (f"/api/v1/reports/breaches.csv?organization_id={f.world.liveco}", None),
        frozenset({404}),
    ),
    Case(
        "GET",
        "/api/v1/reports/{figure}.csv",
        lambda f: ("/api/v1/reports/pages_per_person.csv", None),
        frozenset({403}),
    ),
    # Status pages: the public page carries no tenant's data; a private page, its feed and subscriptions are the
    # organization's own; public updates are written by staff.
    Case("GET", "/api/v1/status", lambda f: ("/api/v1/status", None), frozenset({200}), _no_liveco_data),
    Case("GET", "/api/v1/status/organizations/{slug}", lambda f: ("/api/v1/status/organizations/liveco", None)),
    Case(
        "POST",
        "/api/v1/status/subscriptions",
        lambda f: ("/api/v1/status/subscriptions", {"organization": "liveco", "email": "bob@classmate.test"}),
    ),
    Case(
        "POST",
        "/api/v1/status/incidents/{incident_id}/updates",
        lambda f: ("/api/v1/status/incidents/x/updates", {"status": "identified", "body": "b"}),
        frozenset({403}),
    ),
    # Which services the pages publish: staff read it, admins change it.
    Case(
        "GET",
        "/api/v1/status/published-services",
        lambda f: ("/api/v1/status/published-services", None),
        frozenset({403}),
    ),
    Case(
        "PUT",
        "/api/v1/status/published-services/{service_ref}",
        lambda f: ("/api/v1/status/published-services/x", {"component": "cn-east", "title": "t"}),
        frozenset({403}),
    ),
    Case(
        "DELETE",
        "/api/v1/status/published-services/{service_ref}",
        lambda f: ("/api/v1/status/published-services/x", None),
        frozenset({403}),
    ),
    # Telemetry queries: another tenant's app is not found (tests/telemetry/test_dashboard_api.py has real data).
    Case(
        "GET",
        "/api/v1/apps/{app_id}/series",
        lambda f: ("/api/v1/apps/liveco/series?metric=mos", None),
        frozenset({404}),
        _no_liveco_data,
    ),
    Case(
        "GET",
        "/api/v1/apps/{app_id}/breakdown",
        lambda f: ("/api/v1/apps/liveco/breakdown?metric=mos&dimension=region", None),
        frozenset({404}),
        _no_liveco_data,
    ),
    Case(
        "GET",
        "/api/v1/apps/{app_id}/sessions/{session_id}",
        lambda f: ("/api/v1/apps/liveco/sessions/s1", None),
        frozenset({404}),
        _no_liveco_data,
    ),
    Case(
        "GET",
        "/api/v1/apps/{app_id}/summary",
        lambda f: ("/api/v1/apps/liveco/summary", None),
        frozenset({404}),
        _no_liveco_data,
    ),
    # Detection: a customer lists its own apps' detections only; rules are the vendor's; an organization's
    # notice webhook is that organization's (or an admin's); fault injection is for admins.
    Case("GET", "/api/v1/detections", lambda f: ("/api/v1/detections", None), frozenset({200}), _no_liveco_data),
    Case("GET", "/api/v1/detections/{detection_id}", lambda f: ("/api/v1/detections/no-such-detection", None)),
    Case("GET", "/api/v1/detect/rules", lambda f: ("/api/v1/detect/rules", None), frozenset({403})),
    Case(
        "POST",
        "/api/v1/detect/rules",
        lambda f: (
            "/api/v1/detect/rules",
            {"name": "evil", "metric": "mos", "comparison": "below", "threshold": 4.4, "app_id": "liveco"},
        ),
        frozenset({403}),
    ),
    Case(
        "PATCH",
        "/api/v1/detect/rules/{rule_id}",
        lambda f: ("/api/v1/detect/rules/x", {"threshold": 1.0}),
        frozenset({403}),
    ),
    Case("DELETE", "/api/v1/detect/rules/{rule_id}", lambda f: ("/api/v1/detect/rules/x", None), frozenset({403})),
    Case(
        "GET",
        "/api/v1/organizations/{organization_id}/notice-webhook",
        lambda f: (f"/api/v1/organizations/{f.world.liveco}/notice-webhook", None),
    ),
    Case(
        "PUT",
        "/api/v1/organizations/{organization_id}/notice-webhook",
        lambda f: (
            f"/api/v1/organizations/{f.world.liveco}/notice-webhook",
            {"url": "https://evil.test/hook", "secret": "s" * 20},
        ),
    ),
    Case(
        "DELETE",
        "/api/v1/organizations/{organization_id}/notice-webhook",
        lambda f: (f"/api/v1/organizations/{f.world.liveco}/notice-webhook", None),
    ),
    Case(
        "POST",
        "/api/v1/simulator/faults",
        lambda f: ("/api/v1/simulator/faults", {"spec": "app_outage:liveco::+0s:10m"}),
        frozenset({403}),
    ),
    # Held mail (unauthenticated mail in a customer's name) is for agents only.
    Case("GET", "/api/v1/mail/held", lambda f: ("/api/v1/mail/held", None), frozenset({403})),
    Case(
        "POST",
        "/api/v1/mail/held/{held_id}/release",
        lambda f: ("/api/v1/mail/held/1/release", None),
        frozenset({403}),
    ),
    Case(
        "POST",
        "/api/v1/mail/held/{held_id}/discard",
        lambda f: ("/api/v1/mail/held/1/discard", None),
        frozenset({403}),
    ),
    # Support mailboxes (IMAP) are the vendor's: admins only; a customer neither reads nor adds one.
    Case("GET", "/api/v1/mail/mailboxes", lambda f: ("/api/v1/mail/mailboxes", None), frozenset({403})),
    Case(
        "POST",
        "/api/v1/mail/mailboxes",
        lambda f: (
            "/api/v1/mail/mailboxes",
            {"name": "evil", "address": "evil@x.test", "host": "imap.x.test", "username": "u", "password": "p"},
        ),
        frozenset({403}),
        lambda client, fx, r: _no_mailbox(client, fx, r),
    ),
    Case("GET", "/api/v1/mail/mailboxes/{mailbox_id}", lambda f: ("/api/v1/mail/mailboxes/support", None)),
    Case("POST", "/api/v1/mail/mailboxes/{mailbox_id}/poll", lambda f: ("/api/v1/mail/mailboxes/support/poll", None)),
    Case("DELETE", "/api/v1/mail/mailboxes/{mailbox_id}", lambda f: ("/api/v1/mail/mailboxes/support", None)),
    # A person's phone number (the hotline's caller id) is set by admins only.
    Case(
        "PUT",
        "/api/v1/people/{person_id}/phone",
        lambda f: (f"/api/v1/people/{f.world.alice_id}/phone", {"phone": "+8613900000000"}),
        frozenset({403}),
        lambda client, fx, r: _phone_unchanged(client, fx, r),
    ),
    # The hotline: support lines are the vendor's (admins); Twilio's webhooks take Twilio's signature, never a
    # person's token (this desk has no Twilio account configured, so none is signed; tests/hotline sign them).
    Case("GET", "/api/v1/hotline/lines", lambda f: ("/api/v1/hotline/lines", None), frozenset({403})),
    Case(
        "PUT",
        "/api/v1/hotline/lines/{number}",
        lambda f: ("/api/v1/hotline/lines/%2B15550100001", {"plan": "enterprise"}),
        frozenset({403}),
    ),
    Case("DELETE", "/api/v1/hotline/lines/{number}", lambda f: ("/api/v1/hotline/lines/%2B15550100001", None)),
    *(
        Case(
            "POST",
            path,
            lambda f, path=path: (path, {"CallSid": "CA" + "0" * 32, "Digits": "1"}),
            frozenset({403}),
            _ticket_unchanged,
        )
        for path in (
            "/api/v1/hotline/twilio/voice",
            "/api/v1/hotline/twilio/voice/identify",
            "/api/v1/hotline/twilio/voice/menu",
            "/api/v1/hotline/twilio/voice/wait",
            "/api/v1/hotline/twilio/voice/recorded",
            "/api/v1/hotline/twilio/voice/recording",
            "/api/v1/hotline/twilio/page/ack",
            "/api/v1/hotline/twilio/page/status",
        )
    ),
    # Chat groups: the platforms' event endpoints take no token (a customer's is no signature: 401, or 404 with
    # no app configured); binding groups and apps are the admins'; a ticket's chat trail is its tenant's.
    Case("POST", "/api/v1/chat/slack/events", lambda f: ("/api/v1/chat/slack/events", {}), frozenset({401, 404})),
    Case("POST", "/api/v1/chat/feishu/events", lambda f: ("/api/v1/chat/feishu/events", {}), frozenset({401, 404})),
    Case("POST", "/api/v1/chat/dingtalk/events", lambda f: ("/api/v1/chat/dingtalk/events", {}), frozenset({401, 404})),
    Case("GET", "/api/v1/chat/apps", lambda f: ("/api/v1/chat/apps", None), frozenset({403})),
    Case(
        "PUT",
        "/api/v1/chat/apps/{platform}",
        lambda f: ("/api/v1/chat/apps/slack", {"signing_secret": "x", "bot_token": "y"}),
        frozenset({403}),
    ),
    Case("GET", "/api/v1/chat/groups", lambda f: ("/api/v1/chat/groups", None), frozenset({403})),
    Case(
        "POST",
        "/api/v1/chat/groups",
        lambda f: ("/api/v1/chat/groups", {"platform": "slack", "group_id": "C1", "organization": "liveco"}),
        frozenset({403}),
        lambda client, fx, r: _no_chat_group(client, fx, r),
    ),
    Case(
        "DELETE", "/api/v1/chat/groups/{group_ref}", lambda f: ("/api/v1/chat/groups/slack:C1", None), frozenset({403})
    ),
    Case(
        "PUT",
        "/api/v1/chat/people",
        lambda f: ("/api/v1/chat/people", {"platform": "slack", "user_id": "U1", "person": f.world.alice_id}),
        frozenset({403}),
    ),
    Case("GET", "/api/v1/chat/events", lambda f: ("/api/v1/chat/events", None), frozenset({403})),
    Case(
        "GET",
        "/api/v1/chat/tickets/{ticket_id}/messages",
        lambda f: (f"/api/v1/chat/tickets/{f.liveco_ticket}/messages", None),
        frozenset({404}),
    ),
]


def _phone_unchanged(client: TestClient, fx: Fixture, response: Any) -> None:
    people = client.get("/api/v1/people", headers=bearer(fx.world.admin_token)).json()
    assert [p["phone"] for p in people if p["id"] == fx.world.alice_id] == [None]


def _no_chat_group(client: TestClient, fx: Fixture, response: Any) -> None:
    groups = client.get("/api/v1/chat/groups", headers=bearer(fx.world.admin_token))
    assert groups.status_code == 200 and groups.json() == []


def _no_mailbox(client: TestClient, fx: Fixture, response: Any) -> None:
    boxes = client.get("/api/v1/mail/mailboxes", headers=bearer(fx.world.admin_token))
    assert boxes.status_code == 200 and boxes.json() == []


# Routes that carry no tenant data at all.
PUBLIC_ROUTES = {"/healthz", "/readyz", "/metrics", "/openapi.json"}


def _api_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    # app.routes holds included routers, not their routes: iter_route_contexts flattens them.
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema and route.path not in PUBLIC_ROUTES:
            for method in (route.methods or set()) - {"HEAD", "OPTIONS"}:
                found.add((method, route.path))
    return found


def test_every_api_route_has_an_isolation_case(app: FastAPI) -> None:
    covered = {(c.method, c.path) for c in ISOLATION_CASES}
    missing = _api_routes(app) - covered
    assert not missing, f"add isolation cases for: {sorted(missing)}"


@pytest.fixture
def fx(client: TestClient, desk: Desk) -> Fixture:
    world = build_world(desk)
    ticket = client.post(
        "/api/v1/tickets",
        json={"subject": "LiveCo outage", "body": "secret details", "priority": "P1"},
        headers=bearer(world.alice_token),
    ).json()["id"]
    token_id = client.post("/api/v1/tokens", json={"name": "alice-ci"}, headers=bearer(world.alice_token)).json()["id"]
    with desk.transaction() as s:
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="liveco-live", organization_id=world.liveco)
    agent = bearer(world.agent_token)
    fields = {"app_id": "liveco-live", "channel_name": "liveco-room"}
    assert client.patch(f"/api/v1/tickets/{ticket}", json={"fields": fields}, headers=agent).status_code == 200
    assert client.post(f"/api/v1/tickets/{ticket}/tags", json={"tags": ["vip"]}, headers=agent).status_code == 200
    bob_ticket = client.post(
        "/api/v1/tickets", json={"subject": "ClassMate question", "body": "b"}, headers=bearer(world.bob_token)
    ).json()["id"]
    with desk.transaction() as session:  # what the search follower does after the ticket commits
        search.index_pending(session, desk.clock.now())
    view = client.post(
        "/api/v1/views",
        json={"name": "LiveCo outages", "query": {"q": "outage", "priority": "P1"}},
        headers=bearer(world.alice_token),
    ).json()["id"]
    return Fixture(world, ticket, token_id, _attachment_maker(client, world), bob_ticket, "liveco-live", view)


@pytest.mark.parametrize("case", ISOLATION_CASES, ids=lambda c: f"{c.method} {c.path}")
def test_other_tenant_cannot_reach(client: TestClient, fx: Fixture, case: Case) -> None:
    path, body = case.request(fx)
    response = client.request(case.method, path, json=body, headers=bearer(fx.world.bob_token))
    assert response.status_code in case.allowed, response.text
    assert "secret details" not in response.text
    if case.check is not None:
        case.check(client, fx, response)
