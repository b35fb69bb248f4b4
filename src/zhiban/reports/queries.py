"""Read-only queries that fill the report facts from the tables of tickets, SLA, incidents, notify and kb.

Tickets are replayed from their event log as of a moment (`as_of`), so a past period reads the same
tomorrow as today. Drills (see zhiban.drills) are left out: they are synthetic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from zhiban.core.errors import NotFound
from zhiban.drills.store import drill_incident_ids, drill_ticket_ids
from zhiban.identity.store import OrganizationRow, PersonRow, TeamRow, team_members
from zhiban.incidents import service as incidents
from zhiban.incidents.store import (
    AlertRow,
    IncidentEventRow,
    IncidentRow,
    IncidentTicketRow,
    IntegrationRow,
    ServiceRow,
)
from zhiban.kb.store import DeflectionRow
from zhiban.notify.store import NotificationRow
from zhiban.reports.model import (
    MAX_FACTS,
    PAGING_MODES,
    ClockFact,
    DeflectionFact,
    IncidentFact,
    OnDutyFact,
    PageFact,
    TicketFact,
)
from zhiban.sla.store import ClockRow, PlanRow, PolicyVersionRow, SlaTicketRow
from zhiban.tickets.store import TicketEventRow, TicketRow

CHUNK = 500
UNASSIGNED = "unassigned"
SOLVED = frozenset({"solved", "closed"})


@dataclass(frozen=True, slots=True)
class Scope:
    """Which records a report covers: a period [start, end) and optional plan, priority, team, organization."""

    start: datetime
    end: datetime
    plan: str | None = None
    priority: str | None = None
    team: str | None = None  # a team id or name
    organization_id: str | None = None


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _team_ids(session: Session, team: str) -> list[str]:
    found = session.scalars(select(TeamRow.id).where(or_(TeamRow.id == team, TeamRow.name == team)))
    return list(found)


# -- tickets ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Replay:
    status: str
    first_reply: datetime | None
    solved_at: datetime | None
    reopened: int
    replies_before_solve: int


def _replay(events: Iterable[TicketEventRow]) -> _Replay:
    status, first_reply, solved_at, reopened = "new", None, None, 0
    replies: list[datetime] = []
    for event in events:
        if event.kind == "agent_reply":
            first_reply = first_reply or event.at
            replies.append(event.at)
        elif event.kind == "status_changed":
            data = event.data or {}
            frm, to = str(data.get("frm", status)), str(data.get("to", status))
            if to == "solved":
                solved_at = event.at
            if frm in SOLVED and to not in SOLVED:
                reopened += 1
            status = to
    if status not in SOLVED:
        solved_at = None
    before = sum(1 for r in replies if solved_at is None or r <= solved_at)
    return _Replay(status, first_reply, solved_at, reopened, before)


def ticket_rows(session: Session, scope: Scope, *, created_from: datetime | None) -> list[Any]:
    """(ticket, plan, country, zone, team name) of the scope's tickets created in [created_from, end)."""
    query = (
        select(TicketRow, OrganizationRow.plan, OrganizationRow.country, OrganizationRow.timezone, TeamRow.name)
        .join(OrganizationRow, OrganizationRow.id == TicketRow.organization_id)
        .outerjoin(TeamRow, TeamRow.id == TicketRow.team_id)
        .where(
            TicketRow.created_at < scope.end,
            TicketRow.id.not_in(drill_ticket_ids()),
            OrganizationRow.drill.is_(False),  # a drill customer's ticket counts from its first moment as a drill
        )
    )
    if created_from is not None:
        query = query.where(TicketRow.created_at >= created_from)
    if scope.plan:
        query = query.where(func.lower(OrganizationRow.plan) == scope.plan.lower())
    if scope.priority:
        query = query.where(TicketRow.priority == scope.priority)
    if scope.organization_id:
        query = query.where(TicketRow.organization_id == scope.organization_id)
    if scope.team:
        query = query.where(TicketRow.team_id.in_(_team_ids(session, scope.team)))
    return list(session.execute(query.order_by(TicketRow.id).limit(MAX_FACTS + 1)).all())


def ticket_facts(
    session: Session, scope: Scope, *, as_of: datetime, created_from: datetime | None = None
) -> list[TicketFact]:
    """The scope's tickets as report facts, their state replayed from the event log up to `as_of`."""
    rows = ticket_rows(session, scope, created_from=scope.start if created_from is None else created_from)
    events: dict[int, list[TicketEventRow]] = defaultdict(list)
    ids = [row[0].id for row in rows]
    for part in _chunks(ids):
        query = select(TicketEventRow).where(TicketEventRow.ticket_id.in_(part), TicketEventRow.at <= as_of)
        for event in session.scalars(query.order_by(TicketEventRow.id)):
            events[event.ticket_id].append(event)
    facts = []
    for ticket, plan, country, tz, team in rows:
        if ticket.created_at > as_of:
            continue
        state = _replay(events.get(ticket.id, ()))
        facts.append(
            TicketFact(
                ticket_id=ticket.id,
                organization_id=ticket.organization_id,
                plan=plan,
                priority=ticket.priority,
                created_at=ticket.created_at,
                first_public_reply_at=state.first_reply,
                solved_at=state.solved_at,
                reopened_count=state.reopened,
                public_agent_replies_before_solve=state.replies_before_solve,
                status=state.status,
                team=team,
                customer_country=country,
                customer_tz=tz,
            )
        )
    return facts


def clock_facts(session: Session, ticket_ids: Sequence[int]) -> list[ClockFact]:
    """Every stored SLA clock cycle of these tickets, with the plan the ticket was filed under."""
    facts = []
    for part in _chunks(list(ticket_ids)):
        query = (
            select(ClockRow, SlaTicketRow.plan)
            .join(SlaTicketRow, SlaTicketRow.ticket_id == ClockRow.ticket_id)
            .where(ClockRow.ticket_id.in_(part))
            .order_by(ClockRow.ticket_id, ClockRow.metric, ClockRow.cycle)
        )
        for clock, plan in session.execute(query):
            facts.append(
                ClockFact(
                    ticket_id=clock.ticket_id,
                    plan=plan,
                    metric=clock.metric,
                    state=clock.state,
                    due_at=clock.due_at,
                    fulfilled_at=clock.fulfilled_at,
                    breached_at=clock.breached_at,
                    target_seconds=max(1, clock.target_seconds),
                )
            )
    return facts


# -- incidents ----------------------------------------------------------------------------------------------


def incident_team(session: Session, incident: IncidentRow, policy_id: str | None) -> str:
    """Who owns an incident: the team its policy pages first, else the acknowledger's team."""
    return incidents.owning_team(session, policy_id, incident.acknowledged_by) or UNASSIGNED


def _detected_by(session: Session, incident: IncidentRow) -> str:
    """No column says it: an engineer who opened it → manual; alerts → alert (telemetry if from the detector)."""
    trigger = session.scalar(
        select(IncidentEventRow.actor_id)
        .where(IncidentEventRow.incident_id == incident.id, IncidentEventRow.kind == "triggered")
        .limit(1)
    )
    if trigger:
        return "manual"
    alert = session.execute(
        select(AlertRow.source, IntegrationRow.name)
        .join(IntegrationRow, IntegrationRow.id == AlertRow.integration_id)
        .where(AlertRow.incident_id == incident.id)
        .order_by(AlertRow.created_at)
        .limit(1)
    ).first()
    if alert is None:
        return "manual"
    words = f"{alert[0]} {alert[1]}".lower()
    return "telemetry" if "telemetry" in words or "detect" in words else "alert"


def incident_facts(session: Session, scope: Scope) -> list[IncidentFact]:
    """Incidents triggered in the period (drills left out), with their organizations and first related ticket."""
    query = (
        select(IncidentRow, ServiceRow.name, ServiceRow.policy_id)
        .join(ServiceRow, ServiceRow.id == IncidentRow.service_id)
        .where(
            IncidentRow.triggered_at >= scope.start,
            IncidentRow.triggered_at < scope.end,
            IncidentRow.id.not_in(drill_incident_ids()),
        )
    )
    if scope.organization_id:
        linked = select(IncidentTicketRow.incident_id).where(IncidentTicketRow.organization_id == scope.organization_id)
        query = query.where(or_(IncidentRow.organization_id == scope.organization_id, IncidentRow.id.in_(linked)))
    rows = list(session.execute(query.order_by(IncidentRow.triggered_at).limit(MAX_FACTS + 1)).all())
    orgs: dict[str, set[str]] = defaultdict(set)
    first_ticket: dict[str, datetime] = {}
    ids = [row[0].id for row in rows]
    for part in _chunks(ids):
        links = session.execute(
            select(IncidentTicketRow.incident_id, IncidentTicketRow.organization_id, TicketRow.created_at)
            .join(TicketRow, TicketRow.id == IncidentTicketRow.ticket_id)
            .where(IncidentTicketRow.incident_id.in_(part))
        )
        for incident_id, org_id, created in links:
            orgs[incident_id].add(org_id)
            if incident_id not in first_ticket or created < first_ticket[incident_id]:
                first_ticket[incident_id] = created
    plan_orgs: set[str] | None = None
    if scope.plan:
        query_orgs = select(OrganizationRow.id).where(func.lower(OrganizationRow.plan) == scope.plan.lower())
        plan_orgs = set(session.scalars(query_orgs))
    team_names = None
    if scope.team:
        team_names = {scope.team} | set(
            session.scalars(select(TeamRow.name).where(or_(TeamRow.id == scope.team, TeamRow.name == scope.team)))
        )
    facts = []
    for incident, service_name, policy_id in rows:
        touched = set(orgs.get(incident.id, ()))
        if incident.organization_id:
            touched.add(incident.organization_id)
        if plan_orgs is not None and not touched & plan_orgs:
            continue
        team = incident_team(session, incident, policy_id)
        if team_names is not None and team not in team_names:
            continue
        facts.append(
            IncidentFact(
                incident_id=incident.number,
                service=service_name[:200],
                team=team[:200],
                triggered_at=incident.triggered_at,
                acknowledged_at=incident.acknowledged_at,
                resolved_at=incident.resolved_at,
                detected_by=_detected_by(session, incident),
                organization_ids=frozenset(touched),
                first_related_ticket_at=first_ticket.get(incident.id),
                title=incident.title[:200],
                severity=incident.severity,
            )
        )
    return facts


# -- pages and deflection -------------------------------------------------------------------------------------


def page_facts(session: Session, scope: Scope) -> tuple[list[PageFact], dict[str, str]]:
    """Pages (incident notifications sent to a person) in the period, and the people's names."""
    query = (
        select(NotificationRow.person_id, PersonRow.timezone, PersonRow.name, NotificationRow.sent_at,
               NotificationRow.channel)
        .join(PersonRow, PersonRow.id == NotificationRow.person_id)
        .where(
            NotificationRow.subject_kind == "incident",
            NotificationRow.state == "sent",
            NotificationRow.sent_at >= scope.start,
            NotificationRow.sent_at < scope.end,
            NotificationRow.subject_id.not_in(drill_incident_ids()),
        )
    )  # fmt: skip
    if scope.team:
        members = select(team_members.c.person_id).where(team_members.c.team_id.in_(_team_ids(session, scope.team)))
        query = query.where(NotificationRow.person_id.in_(members))
    facts: list[PageFact] = []
    names: dict[str, str] = {}
    for person_id, tz, name, sent_at, channel in session.execute(query.limit(MAX_FACTS + 1)):
        if person_id is None or sent_at is None:
            continue
        facts.append(PageFact(person_id, tz, sent_at, channel))
        names[person_id] = name
    return facts, names


def deflection_facts(session: Session, scope: Scope) -> list[DeflectionFact]:
    """One fact for the period: drafts = deflections + portal tickets filed (a draft not deflected became one)."""
    deflected = (
        select(func.count())
        .select_from(DeflectionRow)
        .where(DeflectionRow.created_at >= scope.start, DeflectionRow.created_at < scope.end)
    )
    filed = (
        select(func.count())
        .select_from(TicketRow)
        .join(OrganizationRow, OrganizationRow.id == TicketRow.organization_id)
        .where(
            TicketRow.created_at >= scope.start,
            TicketRow.created_at < scope.end,
            TicketRow.channel == "portal",
            TicketRow.id.not_in(drill_ticket_ids()),
            OrganizationRow.drill.is_(False),
        )
    )
    if scope.organization_id:
        deflected = deflected.where(DeflectionRow.organization_id == scope.organization_id)
        filed = filed.where(TicketRow.organization_id == scope.organization_id)
    if scope.plan:
        plan_orgs = select(OrganizationRow.id).where(func.lower(OrganizationRow.plan) == scope.plan.lower())
        deflected = deflected.where(DeflectionRow.organization_id.in_(plan_orgs))
        filed = filed.where(func.lower(OrganizationRow.plan) == scope.plan.lower())
    n_deflected = session.scalar(deflected) or 0
    n_filed = session.scalar(filed) or 0
    return [DeflectionFact(n_deflected + n_filed, n_deflected)]


# -- on duty --------------------------------------------------------------------------------------------------

_ON_DUTY_KINDS = ("on_duty_paged", "on_duty_acknowledged", "agent_reply")


@dataclass(frozen=True, slots=True)
class _Filed:
    """What the SLA feature stored when the ticket was filed: plan, policy version and calendar version."""

    plan: str
    policy_version: int
    calendar_id: str
    calendar_version: int


def _modes_at_filing(session: Session, filed: dict[int, _Filed]) -> dict[int, dict[str, str]]:
    """Each policy version's mode per plan (the version snapshots every plan's support terms)."""
    versions = {f.policy_version for f in filed.values()}
    modes: dict[int, dict[str, str]] = {}
    for part in _chunks(sorted(versions)):
        query = select(PolicyVersionRow.version, PolicyVersionRow.support).where(PolicyVersionRow.version.in_(part))
        for version, support in session.execute(query):
            plans = (support or {}).items()
            modes[version] = {str(plan): str((terms or {}).get("mode", "queue")) for plan, terms in plans}
    return modes


def on_duty_facts(session: Session, scope: Scope, *, as_of: datetime) -> list[OnDutyFact]:
    """The scope's tickets filed under a paging mode, with their first page, acknowledgement and public reply.

    The mode is the plan's as snapshot by the SLA policy version the ticket was filed under (the current plan's
    mode for a ticket the SLA never saw); the hours class is where the filing fell on the calendar version its
    clocks counted on (else the plans' business calendar of the customer's country and zone).
    """
    from zhiban.calendars import service as calendars
    from zhiban.reports.metrics import hours_bucket
    from zhiban.sla.plans import business_calendar

    rows = [row for row in ticket_rows(session, scope, created_from=scope.start) if row[0].created_at <= as_of]
    ids = [row[0].id for row in rows]
    firsts: dict[int, dict[str, datetime]] = defaultdict(dict)
    filed: dict[int, _Filed] = {}
    for part in _chunks(ids):
        events = session.execute(
            select(TicketEventRow.ticket_id, TicketEventRow.kind, func.min(TicketEventRow.at))
            .where(
                TicketEventRow.ticket_id.in_(part),
                TicketEventRow.kind.in_(_ON_DUTY_KINDS),
                TicketEventRow.at <= as_of,
            )
            .group_by(TicketEventRow.ticket_id, TicketEventRow.kind)
        )
        for ticket_id, kind, first in events:
            firsts[ticket_id][kind] = first
        sla = select(
            SlaTicketRow.ticket_id, SlaTicketRow.plan, SlaTicketRow.policy_version, SlaTicketRow.calendar_id,
            SlaTicketRow.calendar_version,
        ).where(SlaTicketRow.ticket_id.in_(part))  # fmt: skip
        for ticket_id, plan, version, calendar_id, calendar_version in session.execute(sla):
            filed[ticket_id] = _Filed(plan, version, calendar_id, calendar_version)
    version_modes = _modes_at_filing(session, filed)
    current = {key.lower(): mode for key, mode in session.execute(select(PlanRow.key, PlanRow.support_mode))}
    facts = []
    for ticket, plan, country, tz, _team in rows:
        at_filing = filed.get(ticket.id)
        if at_filing is not None and at_filing.policy_version in version_modes:
            mode = version_modes[at_filing.policy_version].get(at_filing.plan, "queue")
        else:
            mode = current.get(plan.lower(), "queue")
        if mode not in PAGING_MODES:
            continue
        calendar = None
        if at_filing is not None:
            try:
                calendar = calendars.calendar_version(session, at_filing.calendar_id, at_filing.calendar_version)
            except NotFound:
                calendar = None
        calendar = calendar or business_calendar(country, tz)
        seen = firsts.get(ticket.id, {})
        facts.append(
            OnDutyFact(
                ticket_id=ticket.id,
                organization_id=ticket.organization_id,
                mode=mode,
                hours=hours_bucket(ticket.created_at, calendar).value,
                created_at=ticket.created_at,
                paged_at=seen.get("on_duty_paged"),
                acknowledged_at=seen.get("on_duty_acknowledged"),
                first_public_reply_at=seen.get("agent_reply"),
            )
        )
    return facts
