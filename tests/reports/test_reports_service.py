"""Report figures through the service on real tables (SQLite and PostgreSQL), against hand-computed answers.

The history is described, with its expected figures worked out, in tests/reports/reports_kit.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.reports.reports_kit import History, build_history, utc
from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.desk import Desk
from zhiban.identity.model import Principal, Role
from zhiban.notify.store import NotificationRow
from zhiban.reports import service

STAFF = Principal(person_id="staff", role=Role.AGENT, organization_id=None)


def _figure(desk: Desk, name: str, principal: Principal = STAFF, **filters: str) -> service.Figure:
    with desk.transaction() as s:
        parsed = service.parse_filters(desk.clock, start="2026-10-01", end="2026-10-15", **filters)
        return service.figure(s, desk.clock, principal, name, parsed)


@pytest.fixture
def history(desk: Desk) -> History:
    return build_history(desk)


def _first_response_split_by_hours_bucket(desk: Desk, history: History) -> None:
    fig = _figure(desk, "first_response")
    # Business hours: ticket 1 (make-up Saturday) 20 min; ticket 5 unanswered. Out of hours: ticket 3 30 min.
    # Holiday: ticket 2 (National Day) 50 min and ticket 4 (Columbus Day in New York) 12 min → p50 12, p90 50.
    assert fig.summary["business_hours"] == {"n": 1, "p50_minutes": 20.0, "p90_minutes": 20.0, "unanswered": 1}
    assert fig.summary["out_of_hours"] == {"n": 1, "p50_minutes": 30.0, "p90_minutes": 30.0, "unanswered": 0}
    assert fig.summary["holiday"] == {"n": 2, "p50_minutes": 12.0, "p90_minutes": 50.0, "unanswered": 0}
    # The drill ticket (answered after 1 min on the make-up Saturday) is not among them.
    enterprise = _figure(desk, "first_response", plan="enterprise")
    assert enterprise.summary["holiday"]["n"] == 1 and enterprise.summary["holiday"]["p50_minutes"] == 50.0
    p2 = _figure(desk, "first_response", priority="P2")
    assert [b["n"] for b in p2.summary.values()] == [0, 0, 1]


def _resolution_backlog_and_breaches(desk: Desk, history: History) -> None:
    rows = {r["measure"]: r for r in _figure(desk, "resolution").rows}
    # Solved: 1, 2, 3 of 5 → 60 %; one touch: ticket 1 only → 1/3; reopened: ticket 2 → 1/3.
    assert (rows["resolution_rate"]["part"], rows["resolution_rate"]["whole"]) == (3, 5)
    assert rows["resolution_rate"]["pct"] == 60.0
    assert (rows["one_touch_resolution"]["part"], rows["reopen_rate"]["part"]) == (1, 1)
    assert rows["one_touch_resolution"]["pct"] == pytest.approx(33.33)

    backlog = _figure(desk, "backlog")
    # As of 16 Oct 00:00 UTC: ticket 4 (3 d 10 h old) and ticket 5 (2 d 22 h old) are open.
    assert backlog.summary["count"] == 2
    assert backlog.summary["oldest_hours"] == 82.0 and backlog.summary["age_p50_hours"] == 70.0
    bands = {r["key"]: r["count"] for r in backlog.rows if r["dimension"] == "age_band"}
    assert bands == {"<1d": 0, "1-3d": 1, "3-7d": 1, ">=7d": 0}
    assert {r["key"]: r["count"] for r in backlog.rows if r["dimension"] == "priority"} == {"P1": 1, "P2": 1}

    # Enterprise P1 first response is 15 min (24x7): replies after 20, 50 and 30 min are 5, 35, 15 min late.
    late = {
        r["ticket_id"]: r["late_by_minutes"]
        for r in _figure(desk, "breaches").rows
        if r["metric"] == "first_response" and r["cause"] == "late"
    }
    assert late == {history.ids[1]: 5.0, history.ids[2]: 35.0, history.ids[3]: 15.0}
    compliance = {(r["metric"], r["plan"]): r for r in _figure(desk, "sla_compliance").rows}
    # ClassMate's P2 (4 business hours, the clock waits for Tuesday) was answered in 12 min: met.
    assert (
        compliance[("first_response", "standard")]["met"],
        compliance[("first_response", "standard")]["breached"],
    ) == (1, 0)
    assert compliance[("first_response", "enterprise")]["met"] == 0


def _incident_figures(desk: Desk, history: History) -> None:
    mm = _figure(desk, "mtta_mttr")
    # One incident (the drill's is left out): acknowledged after 4 min, resolved after 70 min, team Network.
    assert mm.summary == {"mtta_minutes": 4.0, "mttr_minutes": 70.0}
    assert {(r["scope"], r["name"]) for r in mm.rows} == {("service", "media network"), ("team", "Network"),
                                                         ("overall", "all")}  # fmt: skip
    assert _figure(desk, "mtta_mttr", team="Network").summary["mtta_minutes"] == 4.0
    assert _figure(desk, "mtta_mttr", team="Video").summary["mtta_minutes"] is None
    proactive = _figure(desk, "proactive_ratio").summary
    # Triggered at 13:54, first related ticket (3) at 14:00: proactive with a 6-minute lead.
    assert (proactive["proactive"], proactive["incidents"], proactive["pct"]) == (1, 1, 100.0)
    assert proactive["lead_p50_minutes"] == 6.0
    deflection = _figure(desk, "deflection_rate").summary
    assert deflection == {"drafts": 5, "deflected": 0, "pct": 0.0}


def _pages_per_person_in_their_zone(desk: Desk, history: History) -> None:
    with desk.transaction() as s:
        for n, sent in enumerate((utc(2026, 10, 10, 19), utc(2026, 10, 12, 23, 30), utc(2026, 10, 13, 10))):
            s.add(
                NotificationRow(
                    idempotency_key=f"page-{n}", subject_kind="incident", subject_id=history.incident_id,
                    person_id=history.world.agent_id, channel="sms", destination={}, rate_key="x", message={},
                    state="sent", due_at=sent, created_at=sent, sent_at=sent,
                )
            )  # fmt: skip
    (row,) = _figure(desk, "pages_per_person").rows
    # The agent's zone is UTC: Saturday 19:00 is out of hours; Monday 23:30 out of hours and sleep hours;
    # Tuesday 10:00 is working time.
    assert (row["total"], row["out_of_hours"], row["sleep_hours"], row["by_channel"]) == (3, 2, 1, "sms:3")


def _customers_read_their_own_organization_only(desk: Desk, history: History) -> None:
    w = history.world
    alice = Principal(person_id=w.alice_id, role=Role.CUSTOMER, organization_id=w.liveco)
    bob = Principal(person_id=w.bob_id, role=Role.CUSTOMER, organization_id=w.classmate)
    # Alice sees LiveCo's tickets only: ticket 4 (ClassMate's Columbus Day ticket) is gone from holiday.
    assert _figure(desk, "first_response", alice).summary["holiday"]["n"] == 1
    assert _figure(desk, "resolution", bob).summary == {"tickets": 1}
    with pytest.raises(NotFound):
        _figure(desk, "first_response", bob, organization_id=w.liveco)
    with pytest.raises(Forbidden):
        _figure(desk, "pages_per_person", alice)


def test_ticket_figures(desk: Desk, history: History) -> None:
    # One history per database serves several checks: building it is the slow part.
    _first_response_split_by_hours_bucket(desk, history)
    _resolution_backlog_and_breaches(desk, history)


def test_incident_page_and_tenant_figures(desk: Desk, history: History) -> None:
    _incident_figures(desk, history)
    _pages_per_person_in_their_zone(desk, history)
    _customers_read_their_own_organization_only(desk, history)


def test_bad_filters_are_refused(desk: Desk) -> None:
    for kwargs in ({"start": "2026-10-05", "end": "2026-10-01"}, {"start": "2020-01-01", "end": "2026-01-01"},
                   {"priority": "P9"}, {"start": "yesterday"}, {"plan": "x" * 101}):  # fmt: skip
        with pytest.raises(InvalidInput):
            service.parse_filters(desk.clock, **kwargs)
    with desk.transaction() as s, pytest.raises(NotFound):
        service.figure(s, desk.clock, STAFF, "nonsense", service.parse_filters(desk.clock))
    default = service.parse_filters(desk.clock)
    # The last 30 days, up to and including this very instant.
    assert default.end - default.start == timedelta(days=30)
    assert default.end == desk.clock.now() + timedelta(microseconds=1)
