"""Storm grouping: a service's rule folds a storm's distinct alerts into few incidents, paged once per step.

Off by default (500 distinct alerts, 500 incidents); by service, by fields (labels) and within a time window when
the service says so; the incident says how many alerts it groups and by which rule. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.incidents.incident_kit import World, build, drain, trigger, worker
from tests.incidents.test_alertmanager_storm import notification
from tests.oncall.test_oncall_views import _login
from tests.tenancy import bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import InvalidInput
from zhiban.desk import Desk
from zhiban.incidents import integrations, service
from zhiban.incidents.model import GroupingRule, parse_events_v2
from zhiban.incidents.store import AlertRow, IncidentRow
from zhiban.notify.store import NotificationRow

STORM = 500


def _group_by(desk: Desk, world: World, rule: GroupingRule) -> None:
    with desk.transaction() as s:
        row = service.get_service(s, world.service)
        service.update_service(
            s,
            row.id,
            name=row.name,
            policy=row.policy_id,
            urgency_rule=row.urgency_rule,
            support_country=row.support_country,
            support_zone=row.support_zone,
            ack_timeout_minutes=row.ack_timeout_minutes,
            organization_id=row.organization_id,
            description=row.description,
            grouping=rule,
        )


def _storm(desk: Desk, key: str, keys: range, batch: int = 100) -> None:
    """Distinct alerts (every dedup key new) through the intake's batch path, `batch` per transaction."""
    events = [parse_events_v2(trigger(key, f"edge-{i:04d}", f"edge-{i:04d} packet loss"), "x") for i in keys]
    for start in range(0, len(events), batch):
        with desk.transaction() as s:
            assert integrations.receive_events_v2_batch(s, desk.clock, events[start : start + batch]) == [None] * len(
                events[start : start + batch]
            )


def _incidents(desk: Desk) -> list[tuple[str, int, Any]]:
    with desk.transaction() as s:
        rows = s.execute(
            select(IncidentRow.id, IncidentRow.alert_count, IncidentRow.grouping).order_by(IncidentRow.number)
        )
        return [(r[0], r[1], r[2]) for r in rows]


def _pages(desk: Desk) -> dict[str, int]:
    """Pages queued per person (every channel, every step)."""
    with desk.transaction() as s:
        rows = s.execute(select(NotificationRow.person_id, func.count()).group_by(NotificationRow.person_id)).all()
    return {str(person): int(count) for person, count in rows}


def test_grouping_is_off_by_default_one_incident_per_distinct_alert(desk: Desk) -> None:
    world = build(desk)
    _storm(desk, world.integration_key, range(STORM))
    found = _incidents(desk)
    assert len(found) == STORM
    assert {(count, grouping) for _, count, grouping in found} == {(1, None)}
    assert _pages(desk) == {world.primary: STORM}  # each incident's first step pages the primary once


def test_grouping_by_service_folds_a_storm_into_one_incident_paged_once_per_step(
    desk: Desk, clock: FrozenClock
) -> None:
    world = build(desk)
    _group_by(desk, world, GroupingRule("service", window_minutes=10))
    _storm(desk, world.integration_key, range(STORM))
    [(incident_id, count, grouping)] = _incidents(desk)
    assert count == STORM and grouping == {"rule": "service", "fields": [], "window_minutes": 10}
    with desk.transaction() as s:
        alerts = s.scalar(
            select(func.count()).where(AlertRow.incident_id == incident_id, AlertRow.open_key.is_not(None))
        )
    assert alerts == STORM  # every alert is kept, open, on the one incident
    assert _pages(desk) == {world.primary: 1}
    # The next step pages the secondary once, not once per alert.
    clock.advance(timedelta(minutes=5, seconds=1))
    drain(worker(desk))
    assert _pages(desk) == {world.primary: 1, world.secondary: 1}
    # A repeat of a grouped alert is folded as before: no new alert, no new incident.
    _storm(desk, world.integration_key, range(3))
    assert [c for _, c, _ in _incidents(desk)] == [STORM]


def test_the_window_closes_and_later_alerts_open_the_next_incident(desk: Desk, clock: FrozenClock) -> None:
    world = build(desk)
    _group_by(desk, world, GroupingRule("service", window_minutes=10))
    _storm(desk, world.integration_key, range(0, 50))
    clock.advance(timedelta(minutes=9))
    _storm(desk, world.integration_key, range(50, 80))  # within 10 minutes of the incident's opening: joins
    clock.advance(timedelta(minutes=2))
    _storm(desk, world.integration_key, range(80, 100))  # 11 minutes after: a new incident
    assert [c for _, c, _ in _incidents(desk)] == [80, 20]


def test_resolving_every_alert_of_a_grouped_incident_resolves_it_and_the_next_storm_opens_anew(desk: Desk) -> None:
    world = build(desk)
    _group_by(desk, world, GroupingRule("service"))
    _storm(desk, world.integration_key, range(20))
    resolve = [
        parse_events_v2(
            {"routing_key": world.integration_key, "event_action": "resolve", "dedup_key": f"edge-{i:04d}"}, "x"
        )
        for i in range(20)
    ]
    with desk.transaction() as s:
        integrations.receive_events_v2_batch(s, desk.clock, resolve)
    with desk.transaction() as s:
        assert list(s.scalars(select(IncidentRow.status))) == ["resolved"]
    _storm(desk, world.integration_key, range(20, 25))
    assert [c for _, c, _ in _incidents(desk)] == [20, 5]


def test_grouping_by_labels_splits_an_alertmanager_storm_by_their_values(client: TestClient, desk: Desk) -> None:
    world = build(desk)
    _group_by(desk, world, GroupingRule("fields", fields=("alertname", "region")))
    with desk.transaction() as s:
        key = integrations.create_integration(s, desk.clock, type_="alertmanager", service_ref=world.service).key
    url = f"/api/v1/integrations/alertmanager/{key}"
    east = notification("firing", range(0, 60))
    west = notification("firing", range(60, 100))
    for alert in west["alerts"]:
        alert["labels"]["region"] = "cn-west"
    west["groupKey"] = '{}/{severity="critical"}:{alertname="NodeDown"}-west'
    assert client.post(url, json=east).status_code == 200
    assert client.post(url, json=west).status_code == 200
    found = _incidents(desk)
    assert sorted(c for _, c, _ in found) == [40, 60]
    assert {g["rule"] for _, _, g in found} == {"fields"}
    assert _pages(desk) == {world.primary: 2}


def test_an_alertmanager_group_still_opens_one_incident_and_says_so(client: TestClient, desk: Desk) -> None:
    world = build(desk)
    with desk.transaction() as s:
        key = integrations.create_integration(s, desk.clock, type_="alertmanager", service_ref=world.service).key
    assert (
        client.post(f"/api/v1/integrations/alertmanager/{key}", json=notification("firing", range(30))).status_code
        == 200
    )
    [(_, count, grouping)] = _incidents(desk)
    assert count == 30 and grouping == {"rule": "sender_group", "fields": [], "window_minutes": 0}


def test_the_service_api_sets_grouping_and_the_incident_shows_it(client: TestClient, desk: Desk) -> None:
    world = build_world(desk)
    admin = bearer(world.admin_token)
    level = [{"delay_minutes": 5, "targets": [{"kind": "person", "ref": world.agent_id}]}]
    policy = client.post("/api/v1/escalation-policies", json={"name": "p", "levels": level}, headers=admin).json()
    body: dict[str, Any] = {"name": "edge", "policy": policy["id"]}
    svc = client.post("/api/v1/incident-services", json=body, headers=admin).json()
    assert svc["grouping"] == {"rule": "off", "fields": [], "window_minutes": 0}
    grouped = {**body, "grouping": {"rule": "service", "window_minutes": 15}}
    svc = client.put(f"/api/v1/incident-services/{svc['id']}", json=grouped, headers=admin).json()
    assert svc["grouping"] == {"rule": "service", "fields": [], "window_minutes": 15}
    # A replace without grouping keeps the rule (the service form does not show it).
    kept = client.put(f"/api/v1/incident-services/{svc['id']}", json={**body, "description": "x"}, headers=admin)
    assert kept.json()["grouping"]["rule"] == "service"
    for bad in (
        {"rule": "fields"},  # fields needs field names
        {"rule": "service", "fields": ["region"]},
        {"rule": "sometimes"},
        {"rule": "service", "window_minutes": 1441},
        {"rule": "fields", "fields": ["bad name"]},
    ):
        refused = client.put(f"/api/v1/incident-services/{svc['id']}", json={**body, "grouping": bad}, headers=admin)
        assert refused.status_code == 422, bad
    assert client.get("/api/v1/incident-services", headers=admin).json()[0]["grouping"]["window_minutes"] == 15

    with desk.transaction() as s:
        key = integrations.create_integration(s, desk.clock, type_="events-v2", service_ref=svc["id"]).key
    _storm(desk, key, range(40), batch=15)
    [(incident_id, _, _)] = _incidents(desk)
    shown = client.get(f"/api/v1/incidents/{incident_id}", headers=admin).json()
    assert shown["alert_count"] == 40
    assert shown["grouping"] == {"rule": "service", "fields": [], "window_minutes": 15}
    listed = client.get("/api/v1/incidents", headers=admin).json()
    assert listed[0]["grouping"]["rule"] == "service"
    _login(client, desk, "admin@vendor.test")
    page = client.get(f"/incidents/{incident_id}", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "Groups 40 alerts · grouped by service · joined within 15 min of opening" in page.text


@pytest.mark.parametrize(
    "args",
    [
        ("sometimes", (), 0),
        ("fields", (), 0),
        ("off", ("region",), 0),
        ("service", (), -1),
        ("service", (), 24 * 60 + 1),
    ],
)
def test_bad_grouping_rules_are_refused(args: tuple[str, tuple[str, ...], int]) -> None:
    with pytest.raises(InvalidInput):
        GroupingRule(*args)
