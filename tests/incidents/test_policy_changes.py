"""Changing the paging set-up: policies name real schedules, edits keep every rule of creation, deletes are safe."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from tests.oncall.oncall_kit import admin_of, daily_rotation
from tests.tenancy import build_world
from zhiban.core.errors import Conflict, InvalidInput
from zhiban.desk import Desk
from zhiban.incidents import service
from zhiban.incidents.store import IncidentEventRow
from zhiban.oncall import service as oncall
from zhiban.oncall.store import ScheduleRow


def _level(kind: str, ref: str) -> list[dict[str, object]]:
    return [{"delay_minutes": 5, "targets": [{"kind": kind, "ref": ref}]}]


def test_a_policy_pages_only_schedules_that_exist(desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    with desk.transaction() as s:
        with pytest.raises(InvalidInput, match="no on-call schedule"):
            service.create_policy(s, desk.clock, name="p", levels=_level("schedule", "Night shift"))
        # A schedule named is stored by id, as people and teams are.
        row = service.create_policy(s, desk.clock, name="p", levels=_level("schedule", "Network primary"))
        assert row.levels[0]["targets"][0]["ref"] == oc.schedule_id
        assert service.policies_targeting_schedule(s, oc.schedule_id) == ["p"]


def test_update_policy_checks_as_create_and_changes_nothing_when_refused(desk: Desk) -> None:
    w = build_world(desk)
    with desk.transaction() as s:
        first = service.create_policy(s, desk.clock, name="first", levels=_level("person", w.agent_id))
        service.create_policy(s, desk.clock, name="second", levels=_level("person", w.admin_id))
        first_id = first.id
    for name, levels, error in (
        ("second", _level("person", w.admin_id), Conflict),
        ("first", _level("person", w.alice_id), InvalidInput),  # a customer is never paged
        ("first", [], InvalidInput),
    ):
        with desk.transaction() as s, pytest.raises(error):
            service.update_policy(
                s, first_id, name=name, levels=levels, repeats=0, calendar_country="CN", calendar_zone="Asia/Shanghai"
            )
    with desk.transaction() as s:
        updated = service.update_policy(
            s,
            "first",
            name="renamed",
            levels=_level("person", "admin@vendor.test"),
            repeats=2,
            calendar_country="us",
            calendar_zone="America/New_York",
        )
        assert (updated.id, updated.repeats, updated.calendar_country) == (first_id, 2, "US")
        assert updated.levels[0]["targets"][0]["ref"] == w.admin_id


def test_deletes_refuse_to_leave_paging_dangling(desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    with desk.transaction() as s:
        policy = service.create_policy(s, desk.clock, name="p", levels=_level("schedule", oc.schedule_id))
        svc = service.create_service(s, desk.clock, name="media", policy=policy.id)
        policy_id, service_id = policy.id, svc.id
    with desk.transaction() as s, pytest.raises(Conflict, match="media"):
        service.delete_policy(s, policy_id)
    with desk.transaction() as s, pytest.raises(Conflict, match="p"):
        oncall.delete_schedule(s, admin_of(w), oc.schedule_id)
    with desk.transaction() as s:
        service.update_service(
            s,
            service_id,
            name="media",
            policy=None,
            urgency_rule="high",
            support_country="CN",
            support_zone="Asia/Shanghai",
            ack_timeout_minutes=30,
            organization_id=None,
            description="",
        )
        service.delete_policy(s, policy_id)
        oncall.delete_schedule(s, admin_of(w), oc.schedule_id)
        assert service.list_policies(s) == [] and oncall.list_schedules(s, admin_of(w)) == []


def test_a_schedule_gone_behind_a_policys_back_pages_nobody_instead_of_failing(desk: Desk) -> None:
    w = build_world(desk)
    oc = daily_rotation(desk, w)
    with desk.transaction() as s:
        policy = service.create_policy(s, desk.clock, name="p", levels=_level("schedule", oc.schedule_id))
        svc = service.create_service(s, desk.clock, name="media", policy=policy.id)
        s.execute(delete(ScheduleRow).where(ScheduleRow.id == oc.schedule_id))
        incident = service.open_incident(s, desk.clock, svc, title="edge down")
        kinds = list(s.scalars(select(IncidentEventRow.kind).where(IncidentEventRow.incident_id == incident.id)))
    assert kinds == ["triggered", "nobody_to_page"]


def test_update_service_refuses_an_unknown_organization(desk: Desk) -> None:
    build_world(desk)
    with desk.transaction() as s:
        svc = service.create_service(s, desk.clock, name="media")
        with pytest.raises(InvalidInput, match="no organization"):
            service.update_service(
                s,
                svc.id,
                name="media",
                policy=None,
                urgency_rule="high",
                support_country="CN",
                support_zone="Asia/Shanghai",
                ack_timeout_minutes=30,
                organization_id="nope",
                description="",
            )
