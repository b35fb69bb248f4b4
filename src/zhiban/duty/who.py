"""Who a plan's tickets would wake now: the first people its paging service's escalation policy reaches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from zhiban.core.errors import NotFound
from zhiban.identity import service as identity
from zhiban.incidents import service as incidents
from zhiban.oncall import service as oncall
from zhiban.sla import service as sla


@dataclass(frozen=True)
class OnDutyPerson:
    id: str
    name: str
    email: str
    until: datetime | None  # the end of their shift when a schedule put them there; None for a named person


@dataclass(frozen=True)
class PlanOnDuty:
    """A plan's paging at a moment: its mode, the service and policy its pages go through, and who is woken first."""

    plan: str
    mode: str
    at: datetime
    service_id: str | None
    service_name: str | None
    policy_id: str | None
    policy_name: str | None
    level: int | None
    people: tuple[OnDutyPerson, ...]


def on_duty_for_plan(session: Session, plan_key: str, at: datetime) -> PlanOnDuty:
    """Whom a ticket of this plan that pages at `at` wakes first (nobody for a queue plan or one without a service)."""
    row = sla.get_plan(session, plan_key)  # NotFound for an unknown plan, rather than an empty answer
    terms = sla.terms_of(row)
    first = incidents.first_page(session, terms.paging_service_id, at) if terms.paging_service_id else None
    if first is None:
        return PlanOnDuty(row.key, terms.mode.value, at, terms.paging_service_id, None, None, None, None, ())
    until: dict[str, datetime] = {}
    for schedule_id in first.schedules:
        try:
            shift, _ = oncall.now_and_next(session, schedule_id, at)
        except NotFound:
            continue  # deleted since the policy named it: nobody from it is paged either
        if shift is not None:
            until.setdefault(shift.person_id, shift.end)
    people = []
    for person_id in first.people:
        person = identity.person(session, person_id)
        if person is not None:
            people.append(OnDutyPerson(person.id, person.name, person.email, until.get(person.id)))
    return PlanOnDuty(
        row.key,
        terms.mode.value,
        at,
        first.service_id,
        first.service_name,
        first.policy_id,
        first.policy_name,
        first.level,
        tuple(people),
    )
