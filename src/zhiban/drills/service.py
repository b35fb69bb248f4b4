"""Use cases of drills: schedule one, start it through the real chain, and judge what happened.

A drill files a P1 ticket for a synthetic organization on the drill's plan (so no real customer ever sees
it, and no customer mail can go out: see is_drill_ticket) and triggers a critical alert on the chosen
service, which opens an incident and pages whoever is on call. After its window the drill is judged
(drills.model.evaluate), then its incident is resolved and its ticket solved. Both are registered in the
`drills` table, which reports and status pages use to leave drills out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.drills import queries
from zhiban.drills.model import MAX_WINDOW_MINUTES, Observation, evaluate, next_occurrence, zone
from zhiban.drills.store import DrillRow, drill_of_incident, drill_of_ticket, recent_drills
from zhiban.engine import JobContext, cancel, enqueue
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal

if TYPE_CHECKING:
    from zhiban.incidents.store import IncidentRow, ServiceRow

START_JOB = "drill.start"
EVALUATE_JOB = "drill.evaluate"
DEFAULT_WINDOW_MINUTES = 60
MAX_SCHEDULED = 200
DRILL_MARK = "[DRILL 演练]"
DRILL_DOMAIN = "drills.zhiban.invalid"  # .invalid never resolves: a drill requester has no real mailbox


# -- the registry other features ask ----------------------------------------------------------------------------


def is_drill_ticket(session: Session, ticket_id: int) -> bool:
    """Whether a drill created this ticket (customer mail and webhooks must skip it)."""
    return drill_of_ticket(session, ticket_id) is not None


def is_drill_incident(session: Session, incident_id: str) -> bool:
    """Whether a drill created this incident (status pages and reports leave it out)."""
    return drill_of_incident(session, incident_id) is not None


# -- scheduling -------------------------------------------------------------------------------------------------


def _plan(session: Session, plan: str) -> Any:
    from zhiban.sla import service as sla

    try:
        return sla.get_plan(session, plan)
    except NotFound as exc:
        known = ", ".join(p.key for p in sla.list_plans(session))
        raise InvalidInput(f"unknown plan {plan!r}; plans: {known}") from exc


def _service(session: Session, name: str) -> ServiceRow:
    from zhiban.incidents import service as incidents

    try:
        return incidents.get_service(session, name)
    except NotFound as exc:
        raise InvalidInput(f"no incident service {name!r}") from exc


def schedule_drill(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    plan: str,
    service: str,
    at: str,
    tz: str = "Asia/Shanghai",
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    expected_team: str | None = None,
) -> DrillRow:
    """Schedule a drill at the next local time matching `at` (e.g. "Sunday 03:00") in `tz` (staff only)."""
    principal.require_staff()
    zone(tz)
    plan_row = _plan(session, plan)
    service_row = _service(session, service)
    if not 5 <= window_minutes <= MAX_WINDOW_MINUTES:
        raise InvalidInput(f"the drill window is 5-{MAX_WINDOW_MINUTES} minutes")
    if expected_team is not None:
        expected_team = expected_team.strip() or None
        if expected_team and identity.team_named(session, expected_team) is None:
            raise InvalidInput(f"no team {expected_team!r}")
    pending = session.scalar(select(func.count()).select_from(DrillRow).where(DrillRow.state == "scheduled")) or 0
    if pending >= MAX_SCHEDULED:
        raise InvalidInput(f"at most {MAX_SCHEDULED} drills may wait at once")
    when = next_occurrence(at, clock.now(), tz)
    row = DrillRow(
        plan=plan_row.key,
        service_id=service_row.id,
        service_name=service_row.name,
        at_label=" ".join(at.split())[:100],
        tz=tz,
        scheduled_at=when,
        window_minutes=window_minutes,
        expected_team=expected_team,
        state="scheduled",
        created_by=principal.person_id,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    enqueue(session, START_JOB, {"drill": row.id}, due_at=when, dedup_key=f"drill.start:{row.id}")
    return row


def cancel_drill(session: Session, principal: Principal, drill_id: str) -> DrillRow:
    """Call off a drill that has not started."""
    principal.require_staff()
    row = get_drill(session, principal, drill_id)
    if row.state != "scheduled":
        raise Conflict(f"the drill is {row.state}; only a scheduled drill can be cancelled")
    row.state = "cancelled"
    cancel(session, f"drill.start:{row.id}")
    return row


def get_drill(session: Session, principal: Principal, drill_id: str) -> DrillRow:
    principal.require_staff()
    row = session.get(DrillRow, drill_id) if len(drill_id) <= 32 else None
    if row is None:
        raise NotFound(f"no drill {drill_id}")
    return row


def list_drills(session: Session, principal: Principal, limit: int = 100) -> list[DrillRow]:
    principal.require_staff()
    return recent_drills(session, limit)


# -- running ----------------------------------------------------------------------------------------------------


def _drill_requester(session: Session, clock: Clock, plan_key: str, tz: str) -> Person:
    """The synthetic customer of a plan's drills, in an organization of its own (made on first use)."""
    slug = f"drill-{plan_key}"[:63].rstrip("-")
    org = identity.organization_with_slug(session, slug)
    if org is None:
        org = identity.organization_value(identity.create_organization(
            session, clock, name=f"Drill · {plan_key}", slug=slug, plan=plan_key, country="CN", timezone=tz,
            language="en",
        ))  # fmt: skip
    email = f"{slug}@{DRILL_DOMAIN}"
    person = identity.person_with_email(session, email)
    if person is None:
        person = identity.person_value(identity.create_person(
            session, clock, email=email, name=f"Drill requester ({plan_key})", role="customer",
            organization_id=org.id, timezone=tz,
        ))  # fmt: skip
    return person


def _trigger(session: Session, clock: Clock, drill: DrillRow, service: ServiceRow) -> IncidentRow:
    """A critical alert on the service through its integration, as monitoring would send it."""
    from zhiban.incidents import integrations
    from zhiban.incidents import service as incidents
    from zhiban.incidents.model import AlertEvent

    title = f"{DRILL_MARK} {service.name}: synthetic critical alert"
    hooks = integrations.list_integrations(session, service.id)
    if hooks:
        event = AlertEvent(
            action="trigger", dedup_key=f"drill:{drill.id}", summary=title, severity="critical", source="zhiban drill"
        )
        incident = incidents.ingest(session, clock, hooks[0], event)
        if incident is not None:
            return incident
    return incidents.open_incident(session, clock, service, title=title, severity="critical")


def start(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `drill.start` timer: file the ticket, trigger the alert, register both, arm the evaluation."""
    from zhiban.identity.service import principal_of
    from zhiban.incidents import service as incidents
    from zhiban.tickets import service as tickets
    from zhiban.tickets.model import Channel

    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        drill = session.scalar(select(DrillRow).where(DrillRow.id == str(payload.get("drill"))).with_for_update())
        if drill is None or drill.state != "scheduled":
            ctx.finish(session)
            return
        now = clock.now()
        service = incidents.find_service(session, drill.service_id)
        if service is None:
            drill.state = "done"
            drill.finished_at = now
            drill.result = {"passed": False, "checks": [], "teams": {}, "problems": ["the drill's service is gone"]}
            ctx.finish(session)
            return
        requester = _drill_requester(session, clock, drill.plan, drill.tz)
        ticket = tickets.create_ticket(
            session,
            clock,
            principal_of(requester),
            subject=f"{DRILL_MARK} {service.name}: viewers cannot join rooms",
            body=(
                "This is a drill: a synthetic P1 ticket to test the night chain. Please answer it as you would a "
                "real one. 这是一次演练：用于检验夜间值班链路的模拟 P1 工单，请按真实工单处理。"
            ),
            priority="P1",
            channel=Channel.API,
        )
        drill.ticket_id = ticket.id
        session.flush()
        incident = _trigger(session, clock, drill, service)
        drill.incident_id = incident.id
        incidents.link_ticket(session, incident.id, ticket.id)
        drill.state = "running"
        drill.started_at = now
        due = now + timedelta(minutes=drill.window_minutes)
        enqueue(session, EVALUATE_JOB, {"drill": drill.id}, due_at=due, dedup_key=f"drill.evaluate:{drill.id}")
        ctx.finish(session)


def _target(session: Session, plan_key: str) -> timedelta | None:
    try:
        plan = _plan(session, plan_key)
    except InvalidInput:
        return None
    for target in plan.targets.get("P1", []):
        if target.get("metric") == "first_response":
            return timedelta(minutes=float(target["minutes"]))
    return None


def observe(session: Session, drill: DrillRow, now: datetime) -> Observation:
    """What the tables say about a drill up to `now`."""
    return queries.observe(session, drill, now, _target(session, drill.plan))


def evaluate_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `drill.evaluate` timer: judge the drill, then resolve its incident and solve its ticket."""
    from zhiban.incidents import service as incidents
    from zhiban.tickets import service as tickets

    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        drill = session.scalar(select(DrillRow).where(DrillRow.id == str(payload.get("drill"))).with_for_update())
        if drill is None or drill.state != "running":
            ctx.finish(session)
            return
        now = clock.now()
        drill.result = evaluate(observe(session, drill, now)).to_json()
        drill.state = "done"
        drill.finished_at = now
        system = incidents.system_principal()
        if drill.incident_id:
            incidents.resolve(session, clock, system, drill.incident_id, via="drill finished")
        found = drill.ticket_id is not None and tickets.ref(session, drill.ticket_id) is not None
        ticket = tickets.get_ticket(session, system, drill.ticket_id).ticket if found and drill.ticket_id else None
        if ticket is not None and ticket.status not in ("solved", "closed"):
            tickets.change_status(session, clock, system, ticket.id, "solved")
        ctx.finish(session)
