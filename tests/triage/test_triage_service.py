"""Triage in the running desk: every new ticket is classified, prioritized and routed; corrections retrain."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.tenancy import bearer, build_world
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.tickets.store import TicketRow
from zhiban.triage import service
from zhiban.triage.store import TriageModelRow, TriageRow


def _teams(desk: Desk) -> dict[str, str]:
    """The demo's three teams, by domain."""
    with desk.transaction() as s:
        return {
            domain: identity.create_team(s, name=name, domain=domain).id
            for name, domain in (
                ("Network", "network"),
                ("Video & Audio", "video"),
                ("SDK & Integration", "sdk_integration"),
            )
        }


def test_new_ticket_is_triaged_and_routed(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    teams = _teams(desk)
    r = client.post(
        "/api/v1/tickets",
        json={"subject": "远端画面黑屏", "body": "学生看不到老师的视频，远端黑屏，SDK 4.3.2"},
        headers=bearer(w.alice_token),
    )
    assert r.status_code == 201
    tid = r.json()["id"]
    triage = client.get(f"/api/v1/tickets/{tid}/triage", headers=bearer(w.agent_token)).json()
    assert triage["domain"] == "video" and 0 < triage["confidence"] <= 1
    assert triage["team_id"] == teams["video"] and triage["team"] == "Video & Audio"
    assert triage["suggested_priority"] in ("P1", "P2", "P3", "P4") and triage["model_version"] == 1
    with Session(desk.db) as s:
        ticket = s.get(TicketRow, tid)
        assert ticket is not None and ticket.team_id == teams["video"]

    # An outage on the Enterprise plan is suggested P1; an invoice question P4; audio goes to Video & Audio.
    outage = client.post(
        "/api/v1/tickets",
        json={"subject": "线上大面积卡顿", "body": "所有用户都卡，紧急！"},
        headers=bearer(w.alice_token),
    ).json()["id"]
    assert (
        client.get(f"/api/v1/tickets/{outage}/triage", headers=bearer(w.agent_token)).json()["suggested_priority"]
        == "P1"
    )
    audio = client.post(
        "/api/v1/tickets",
        json={"subject": "No audio on iOS", "body": "Remote users cannot hear the host after joining the channel."},
        headers=bearer(w.bob_token),
    ).json()["id"]
    routed = client.get(f"/api/v1/tickets/{audio}/triage", headers=bearer(w.agent_token)).json()
    assert routed["domain"] == "audio" and routed["team_id"] == teams["video"]
    for token in (w.alice_token, w.bob_token):
        assert client.get(f"/api/v1/tickets/{tid}/triage", headers=bearer(token)).status_code == 403


def test_correction_reroutes_and_feeds_retraining(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    teams = _teams(desk)
    tid = client.post(
        "/api/v1/tickets",
        json={"subject": "quokka widget misbehaves", "body": "the quokka widget misbehaves again"},
        headers=bearer(w.alice_token),
    ).json()["id"]
    before = client.get(f"/api/v1/tickets/{tid}/triage", headers=bearer(w.agent_token)).json()
    corrected = client.post(
        f"/api/v1/tickets/{tid}/triage", json={"domain": "sdk_integration"}, headers=bearer(w.agent_token)
    )
    assert corrected.status_code == 200
    after = corrected.json()
    assert after["domain"] == "sdk_integration" and after["predicted_domain"] == before["predicted_domain"]
    assert after["corrected"] and after["corrected_by"] == w.agent_id and after["team_id"] == teams["sdk_integration"]
    assert (
        client.post(
            f"/api/v1/tickets/{tid}/triage", json={"domain": "cooking"}, headers=bearer(w.agent_token)
        ).status_code
        == 422
    )
    with Session(desk.db) as s:
        ticket = s.get(TicketRow, tid)
        assert ticket is not None and ticket.team_id == teams["sdk_integration"]

    with desk.transaction() as s:
        examples = service.corrections(s)
        assert [(e.subject, e.domain) for e in examples] == [("quokka widget misbehaves", "sdk_integration")]
        report = service.retrain(s, desk.clock)
        assert report.trained and report.version == 2 and report.corrections == 1
        assert not service.retrain(s, desk.clock).trained  # nothing new: same model kept
    with desk.transaction() as s:
        version, model = service.current_model(s, desk.clock)
        assert version == 2
        assert any(e.subject == "quokka widget misbehaves" and e.domain == "sdk_integration" for e in model.examples)
        rows = s.scalars(select(TriageModelRow.id).order_by(TriageModelRow.id)).all()
        assert list(rows) == [1, 2]


def test_triage_failure_never_loses_the_ticket(client: TestClient, desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    w = build_world(desk)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("model store unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(service, "current_model", broken)
        r = client.post("/api/v1/tickets", json={"subject": "s", "body": "b"}, headers=bearer(w.alice_token))
    assert r.status_code == 201
    with Session(desk.db) as s:
        assert s.get(TriageRow, r.json()["id"]) is None
    # Asked later, the ticket is triaged on demand.
    late = client.get(f"/api/v1/tickets/{r.json()['id']}/triage", headers=bearer(w.agent_token))
    assert late.status_code == 200 and late.json()["team_id"] is None  # no teams on this desk


def test_agent_page_panel_and_form_correction(client: TestClient, desk: Desk) -> None:
    from tests.tenancy import web_login

    w = build_world(desk, passwords=True)
    _teams(desk)
    tid = client.post(
        "/api/v1/tickets",
        json={"subject": "Token expired 109", "body": "renewToken fails"},
        headers=bearer(w.alice_token),
    ).json()["id"]
    web_login(client, "agent@vendor.test")
    panel = client.get(f"/agent/triage/tickets/{tid}")
    assert panel.status_code == 200 and "SDK &amp; Integration" in panel.text  # auth_token -> closest team
    page = client.get(f"/tickets/{tid}")
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    fixed = client.post(f"/agent/triage/tickets/{tid}", data={"domain": "network", "csrf_token": csrf})
    assert fixed.status_code == 200 and "Network" in fixed.text
    assert client.get(f"/api/v1/tickets/{tid}/triage", headers=bearer(w.agent_token)).json()["domain"] == "network"


def test_ticket_filed_before_the_model_is_ready_is_triaged_by_a_job(
    client: TestClient, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zhiban.engine import Worker, list_jobs
    from zhiban.tickets.events import FOLLOW_JOB
    from zhiban.tickets.jobs import registry as ticket_jobs

    w = build_world(desk)
    monkeypatch.setattr(service, "_models", {})  # a fresh process: nothing trained or loaded yet
    r = client.post(
        "/api/v1/tickets",
        json={"subject": "推流失败", "body": "OBS 推流到 CDN 一直断开"},
        headers=bearer(w.alice_token),
    )
    assert r.status_code == 201
    tid = r.json()["id"]
    with Session(desk.db) as s:
        assert s.get(TriageRow, tid) is None  # filing did not wait for a model
        assert [j.kind for j in list_jobs(s, kind=FOLLOW_JOB)] == [FOLLOW_JOB]
    Worker(desk.sessions, ticket_jobs, desk.clock).run_once()
    with Session(desk.db) as s:
        row = s.get(TriageRow, tid)
        assert row is not None and row.domain == "recording_streaming"
