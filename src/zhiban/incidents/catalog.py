"""Services and escalation policies of incidents, and the staff people they name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal
from zhiban.incidents.escalation import (
    EscalationPolicy,
    TargetKind,
)
from zhiban.incidents.model import (
    URGENCY_RULES,
    GroupingRule,
    policy_from_spec,
)
from zhiban.incidents.store import (
    EscalationPolicyRow,
    ServiceRow,
)

# --- people ---------------------------------------------------------------------------------------


def find_person(session: Session, ref: str) -> Person | None:
    """A person by id or e-mail address."""
    return identity.find_person(session, ref)


def _staff_person(session: Session, ref: str) -> Person:
    person = find_person(session, ref)
    if person is None or person.role == "customer" or not person.active:
        raise InvalidInput(f"no active agent or admin {ref!r}")
    return person


def system_principal() -> Principal:
    """The desk itself acting (integrations, timers)."""
    from zhiban.identity.model import Role

    return Principal(person_id="system", role=Role.ADMIN, organization_id=None, name="zhiban")


# --- escalation policies and services -------------------------------------------------------------


def _normalize_levels(session: Session, levels: Any) -> list[dict[str, Any]]:
    """Validate levels and store people by id (an e-mail address in a target is looked up)."""
    policy_from_spec("check", "check", levels, 0)
    cleaned = []
    for level in levels:
        targets = []
        for target in level["targets"]:
            ref = str(target["ref"])
            if target["kind"] == TargetKind.PERSON:
                ref = _staff_person(session, ref).id
            elif target["kind"] == TargetKind.TEAM:
                team = identity.team(session, ref)
                if team is None:
                    raise InvalidInput(f"no team {ref!r}")
                ref = team.id
            elif target["kind"] == TargetKind.SCHEDULE:
                ref = _schedule_id(session, ref)
            targets.append({"kind": target["kind"], "ref": ref, "round_robin": bool(target.get("round_robin", False))})
        cleaned.append({**level, "targets": targets})
    return cleaned


def _schedule_id(session: Session, ref: str) -> str:
    """A schedule's id from its id or name: a level must not page a schedule that does not exist."""
    from zhiban.oncall import service as oncall

    found = oncall.schedule_named(session, ref)
    if found is None:
        raise InvalidInput(f"no on-call schedule {ref!r}")
    return found[0]


def _checked_policy(
    session: Session,
    *,
    name: str,
    levels: list[dict[str, Any]],
    repeats: int,
    calendar_country: str,
    calendar_zone: str,
    policy_id: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(name, normalized levels) of a policy about to be saved; `policy_id` is the one being edited."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("policy name must be 1-200 characters")
    other = session.scalar(select(EscalationPolicyRow.id).where(EscalationPolicyRow.name == name))
    if other is not None and other != policy_id:
        raise Conflict(f"escalation policy {name!r} exists")
    cleaned = _normalize_levels(session, levels)
    policy_from_spec("check", name, cleaned, repeats)
    _business_calendar(calendar_country, calendar_zone)
    return name, cleaned


def create_policy(
    session: Session,
    clock: Clock,
    *,
    name: str,
    levels: list[dict[str, Any]],
    repeats: int = 0,
    calendar_country: str = "CN",
    calendar_zone: str = "Asia/Shanghai",
) -> EscalationPolicyRow:
    """Store an escalation policy (levels as JSON: see model.level_from_spec)."""
    name, cleaned = _checked_policy(
        session,
        name=name,
        levels=levels,
        repeats=repeats,
        calendar_country=calendar_country,
        calendar_zone=calendar_zone,
    )
    row = EscalationPolicyRow(
        name=name,
        levels=cleaned,
        repeats=repeats,
        calendar_country=calendar_country.upper(),
        calendar_zone=calendar_zone,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def update_policy(
    session: Session,
    ref: str,
    *,
    name: str,
    levels: list[dict[str, Any]],
    repeats: int,
    calendar_country: str,
    calendar_zone: str,
) -> EscalationPolicyRow:
    """Replace a policy's name, levels, repeats and calendar; incidents paging by it take the new levels next step."""
    row = get_policy(session, ref)
    name, cleaned = _checked_policy(
        session,
        name=name,
        levels=levels,
        repeats=repeats,
        calendar_country=calendar_country,
        calendar_zone=calendar_zone,
        policy_id=row.id,
    )
    row.name = name
    row.levels = cleaned
    row.repeats = repeats
    row.calendar_country = calendar_country.upper()
    row.calendar_zone = calendar_zone
    session.flush()
    return row


def delete_policy(session: Session, ref: str) -> None:
    """Delete a policy no service uses (a service without one pages nobody, so that is never done silently)."""
    row = get_policy(session, ref)
    users = list(
        session.scalars(select(ServiceRow.name).where(ServiceRow.policy_id == row.id).order_by(ServiceRow.name))
    )
    if users:
        raise Conflict(f"services use this policy: {', '.join(users[:10])}; give them another one first")
    session.delete(row)
    session.flush()


def policies_targeting_schedule(session: Session, schedule_id: str) -> list[str]:
    """Names of the policies with a level that pages this schedule."""
    return [
        row.name
        for row in list_policies(session)
        if any(
            t.get("kind") == TargetKind.SCHEDULE and t.get("ref") == schedule_id
            for level in row.levels
            for t in level.get("targets", ())
        )
    ]


def get_policy(session: Session, ref: str) -> EscalationPolicyRow:
    """A policy by id or name."""
    row = session.get(EscalationPolicyRow, ref) or session.scalar(
        select(EscalationPolicyRow).where(EscalationPolicyRow.name == ref)
    )
    if row is None:
        raise NotFound(f"no escalation policy {ref!r}")
    return row


def list_policies(session: Session) -> list[EscalationPolicyRow]:
    return list(session.scalars(select(EscalationPolicyRow).order_by(EscalationPolicyRow.name).limit(500)))


def policy_of(row: EscalationPolicyRow) -> EscalationPolicy:
    """The pure policy of a stored one."""
    return policy_from_spec(row.id, row.name, row.levels, row.repeats)


def _check_service(
    session: Session,
    *,
    name: str,
    urgency_rule: str,
    support_country: str,
    support_zone: str,
    ack_timeout_minutes: int,
    description: str,
    organization_id: str | None,
    service_id: str | None = None,
) -> str:
    """The trimmed name of a service about to be saved; `service_id` is the one being edited."""
    name = name.strip()
    if not 1 <= len(name) <= 200 or len(description) > 1000:
        raise InvalidInput("service name must be 1-200 characters, description at most 1000")
    if urgency_rule not in URGENCY_RULES:
        raise InvalidInput(f"urgency rule must be one of {URGENCY_RULES}")
    if not 0 <= ack_timeout_minutes <= 24 * 60:
        raise InvalidInput("ack timeout is 0 (never) to 1440 minutes")
    other = session.scalar(select(ServiceRow.id).where(ServiceRow.name == name))
    if other is not None and other != service_id:
        raise Conflict(f"service {name!r} exists")
    if organization_id is not None and identity.organization(session, organization_id) is None:
        raise InvalidInput(f"no organization {organization_id!r}")
    _business_calendar(support_country, support_zone)
    return name


def create_service(
    session: Session,
    clock: Clock,
    *,
    name: str,
    policy: str | None = None,
    urgency_rule: str = "high",
    support_country: str = "CN",
    support_zone: str = "Asia/Shanghai",
    ack_timeout_minutes: int = 30,
    organization_id: str | None = None,
    description: str = "",
    grouping: GroupingRule | None = None,
) -> ServiceRow:
    """Store a service that alerts come in on, with its escalation policy, urgency rule and storm grouping."""
    name = _check_service(
        session,
        name=name,
        urgency_rule=urgency_rule,
        support_country=support_country,
        support_zone=support_zone,
        ack_timeout_minutes=ack_timeout_minutes,
        description=description,
        organization_id=organization_id,
    )
    row = ServiceRow(
        name=name,
        description=description,
        policy_id=get_policy(session, policy).id if policy else None,
        urgency_rule=urgency_rule,
        support_country=support_country.upper(),
        support_zone=support_zone,
        ack_timeout_minutes=ack_timeout_minutes,
        organization_id=organization_id,
        created_at=clock.now(),
    )
    _set_grouping(row, grouping or GroupingRule())
    session.add(row)
    session.flush()
    return row


def _set_grouping(row: ServiceRow, grouping: GroupingRule) -> None:
    row.grouping_rule = grouping.rule
    row.grouping_fields = list(grouping.fields) or None
    row.grouping_window_minutes = grouping.window_minutes


def grouping_of(row: ServiceRow) -> GroupingRule:
    """The service's storm grouping rule (off when it has none)."""
    return GroupingRule(row.grouping_rule or "off", tuple(row.grouping_fields or ()), row.grouping_window_minutes or 0)


def update_service(
    session: Session,
    ref: str,
    *,
    name: str,
    policy: str | None,
    urgency_rule: str,
    support_country: str,
    support_zone: str,
    ack_timeout_minutes: int,
    organization_id: str | None,
    description: str,
    grouping: GroupingRule | None = None,
) -> ServiceRow:
    """Replace a service's settings (no `policy`: it pages nobody; no `grouping`: it keeps its rule); open incidents
    keep their urgency and their alerts."""
    row = get_service(session, ref)
    checked = _check_service(
        session,
        name=name,
        urgency_rule=urgency_rule,
        support_country=support_country,
        support_zone=support_zone,
        ack_timeout_minutes=ack_timeout_minutes,
        description=description,
        organization_id=organization_id,
        service_id=row.id,
    )
    policy_id = get_policy(session, policy).id if policy else None
    row.name = checked
    row.policy_id = policy_id
    row.urgency_rule = urgency_rule
    row.support_country = support_country.upper()
    row.support_zone = support_zone
    row.ack_timeout_minutes = ack_timeout_minutes
    row.organization_id = organization_id
    row.description = description
    if grouping is not None:
        _set_grouping(row, grouping)
    session.flush()
    return row


def get_service(session: Session, ref: str) -> ServiceRow:
    """A service by id or name."""
    row = session.get(ServiceRow, ref) or session.scalar(select(ServiceRow).where(ServiceRow.name == ref))
    if row is None:
        raise NotFound(f"no service {ref!r}")
    return row


def list_services(session: Session) -> list[ServiceRow]:
    return list(session.scalars(select(ServiceRow).order_by(ServiceRow.name).limit(500)))


def find_service(session: Session, service_id: str | None) -> ServiceRow | None:
    """A service by id (None: no id, or it is gone)."""
    return session.get(ServiceRow, service_id) if service_id else None


def service_names(session: Session) -> dict[str, str]:
    """Every service's name by id."""
    return {i: n for i, n in session.execute(select(ServiceRow.id, ServiceRow.name))}


def services_by_policy(session: Session, policy_id: str | None = None) -> dict[str, list[str]]:
    """The names of the services each policy pages for (only `policy_id`'s, if given), by name."""
    query = select(ServiceRow.policy_id, ServiceRow.name)
    if policy_id is not None:
        query = query.where(ServiceRow.policy_id == policy_id)
    found: dict[str, list[str]] = {}
    for policy, name in session.execute(query.order_by(ServiceRow.name)):
        if policy:
            found.setdefault(policy, []).append(name)
    return found


def _business_calendar(country: str, zone: str) -> Any:
    from zhiban.calendars import country_calendar

    return country_calendar(country, zone)
