"""The paging chain of incidents: escalation steps as durable engine timers, pages with signed ack links.

Every escalation step is a durable engine timer (`incident.escalate`, dedup key incident × generation ×
step). A step fires once in one transaction: it pages its people (one stored message per person and
contact method, keyed by `step_key`), marks itself done and arms the next step, so a worker killed at
any point either left nothing or left all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import NotFound
from zhiban.engine import JobContext, cancel, enqueue_many, urgent_kind
from zhiban.identity import service as identity
from zhiban.incidents import events
from zhiban.incidents.catalog import _business_calendar, find_service, policy_of
from zhiban.incidents.escalation import (
    EscalationPolicy,
    EscalationStep,
    Target,
    TargetKind,
    Urgency,
    next_step,
    rotation_of,
    step_key,
)
from zhiban.incidents.model import (
    IncidentStatus,
    make_ack_token,
)
from zhiban.incidents.store import (
    EscalationPolicyRow,
    EscalationStepRow,
    IncidentEventRow,
    IncidentRow,
    ServiceRow,
)

log = logging.getLogger("zhiban.incidents")

ESCALATE_JOB = urgent_kind("incident.escalate")
ACK_TIMEOUT_JOB = urgent_kind("incident.ack_timeout")
AUDIT_JOB = "incident.audit"
AUDIT_EVERY = timedelta(minutes=5)
AUDIT_GRACE = timedelta(seconds=120)
ACK_LINK_LIFETIME = timedelta(hours=24)

# --- links in pages (signed one-click acknowledge) -----------------------------------------------

_link_config: dict[str, str] = {}
# Where a process without a desk (a bare `python -m zhiban.engine` worker) takes them from: set by incidents.hooks.
_link_defaults: list[Callable[[], tuple[str, str]]] = []


def configure_links(*, secret_key: str, base_url: str) -> None:
    """Sign acknowledge links with this key and point them at this base URL (the web app sets its desk's)."""
    _link_config.update(secret_key=secret_key, base_url=base_url.rstrip("/"))


def links_default(source: Callable[[], tuple[str, str]]) -> None:
    """Where to take (secret key, base URL) from when no desk configured the links."""
    _link_defaults[:] = [source]


def _links() -> tuple[str, str]:
    # A desk hands over its key and URL at start-up (incidents.hooks.configure); a bare worker has defaults.
    if "secret_key" not in _link_config:
        if not _link_defaults:
            raise RuntimeError("acknowledge links are not configured: no desk and no incidents.hooks")
        secret_key, base_url = _link_defaults[0]()
        configure_links(secret_key=secret_key, base_url=base_url)
    return _link_config["secret_key"], _link_config["base_url"]


def ack_url(incident_id: str, person_id: str, now: datetime) -> str:
    """The signed one-click acknowledge link for this person and incident."""
    secret, base = _links()
    return f"{base}/ack/{make_ack_token(secret, incident_id, person_id, now + ACK_LINK_LIFETIME)}"


def _event(
    session: Session,
    incident_id: str,
    kind: str,
    at: datetime,
    *,
    actor_id: str | None = None,
    body: str = "",
    data: dict[str, Any] | None = None,
    internal: bool = True,
) -> None:
    session.add(
        IncidentEventRow(
            incident_id=incident_id, kind=kind, at=at, actor_id=actor_id, body=body, data=data or {}, internal=internal
        )
    )


# --- escalation -----------------------------------------------------------------------------------


def changed(
    session: Session,
    clock: Clock,
    incident: IncidentRow,
    kind: events.IncidentChangeKind,
    *,
    actor_id: str | None = None,
    people: Sequence[str] = (),
) -> None:
    """Tell the subscribed features what just happened to the incident (same transaction)."""
    events.emit(session, clock, _change(clock, incident, kind, actor_id=actor_id, people=people))


def _change(
    clock: Clock,
    incident: IncidentRow,
    kind: events.IncidentChangeKind,
    *,
    actor_id: str | None = None,
    people: Sequence[str] = (),
) -> events.IncidentChange:
    return events.IncidentChange(
        incident.id,
        incident.number,
        kind,
        clock.now(),
        incident.ticket_id,
        actor_id=actor_id,
        paged=len(people),
        people=tuple(people),
        title=incident.title,
    )


def _resolver(session: Session) -> Any:
    def resolve(target: Target, at: datetime) -> Sequence[str]:
        if target.kind is TargetKind.PERSON:
            person = identity.person(session, target.ref)
            return [person.id] if person is not None and person.active else []
        if target.kind is TargetKind.TEAM:
            return [p.id for p in identity.team_members(session, target.ref) if p.active]
        try:
            from zhiban.oncall.service import on_call_now  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            log.warning("schedule target %s: on-call schedules are not available", target.ref)
            return []
        try:
            found: list[str] = on_call_now(session, target.ref, at)
        except NotFound:
            log.warning("schedule target %s: no such schedule", target.ref)
            return []
        return found

    return resolve


class _Planner:
    """What a batch of escalations reads once: each policy as a value, each calendar, each target's people at a moment.

    Lives for one call: a storm's incidents share a few policies and the same on-call people.
    """

    def __init__(self, session: Session) -> None:
        self._resolve = _resolver(session)
        self._policies: dict[str, EscalationPolicy] = {}
        self._calendars: dict[tuple[str, str], Any] = {}
        self._people: dict[tuple[Target, datetime], Sequence[str]] = {}

    def policy(self, row: EscalationPolicyRow) -> EscalationPolicy:
        found = self._policies.get(row.id)
        if found is None:
            found = self._policies[row.id] = policy_of(row)
        return found

    def calendar(self, country: str, zone: str) -> Any:
        found = self._calendars.get((country, zone))
        if found is None:
            found = self._calendars[(country, zone)] = _business_calendar(country, zone)
        return found

    def resolve(self, target: Target, at: datetime) -> Sequence[str]:
        found = self._people.get((target, at))
        if found is None:
            found = self._people[(target, at)] = tuple(self._resolve(target, at))
        return found


def _plan_next(
    planner: _Planner,
    incident: IncidentRow,
    service: ServiceRow,
    policy_row: EscalationPolicyRow,
    previous: EscalationStep | None,
) -> EscalationStep | None:
    support = planner.calendar(service.support_country, service.support_zone)
    business = planner.calendar(policy_row.calendar_country, policy_row.calendar_zone)
    return next_step(
        planner.policy(policy_row),
        previous,
        incident.triggered_at if previous is not None else _generation_start(incident),
        Urgency(incident.urgency),
        planner.resolve,
        support.is_open,
        is_business_time=business.is_open,
        round_robin_offset=incident.round_robin_offset,
    )


def on_call_for_service(session: Session, service_id: str | None, at: datetime) -> list[str]:
    """Who the service's escalation policy would page first at `at` (person ids): whoever is on duty for it now.

    The first level whose condition holds and whose targets resolve to somebody, as a high-urgency page
    would find it; [] for an unknown service, one without a policy, or a policy that resolves to nobody.
    """
    service = find_service(session, service_id)
    if service is None or service.policy_id is None:
        return []
    policy_row = session.get(EscalationPolicyRow, service.policy_id)
    if policy_row is None:
        return []
    business = _business_calendar(policy_row.calendar_country, policy_row.calendar_zone)
    step = next_step(
        policy_of(policy_row), None, at, Urgency.HIGH, _resolver(session), is_business_time=business.is_open
    )
    return list(step.targets) if step is not None else []


def _generation_start(incident: IncidentRow) -> datetime:
    return incident.updated_at if incident.generation else incident.triggered_at


def _escalate_key(incident_id: str, generation: int, step_no: int) -> str:
    return f"esc:{incident_id}:{generation}:{step_no}"


def _step_row(incident: IncidentRow, step: EscalationStep) -> EscalationStepRow:
    return EscalationStepRow(
        incident_id=incident.id,
        generation=incident.generation,
        step_no=step.step_no,
        level_index=step.level_index,
        repeat=step.repeat,
        due_at=step.due_at,
        state="scheduled",
        planned_targets=list(step.targets),
        paged=[],
    )


def _schedule(session: Session, planned: Sequence[tuple[IncidentRow, EscalationStep]]) -> None:
    """Store these future steps and arm their timers (one multi-row INSERT of timers)."""
    if not planned:
        return
    session.add_all([_step_row(incident, step) for incident, step in planned])
    enqueue_many(
        session,
        [
            (
                ESCALATE_JOB,
                {"incident": incident.id, "generation": incident.generation, "step": step.step_no},
                step.due_at,
                _escalate_key(incident.id, incident.generation, step.step_no),
            )
            for incident, step in planned
        ],
        max_attempts=20,
    )


def start_escalation(
    session: Session, clock: Clock, incident: IncidentRow, service: ServiceRow, *, audit: bool = True
) -> None:
    """Plan the first step of the service's policy and arm its timer (and, unless the caller did, the auditor)."""
    start_escalations(session, clock, [(incident, service)], audit=audit)


def start_escalations(
    session: Session, clock: Clock, opened: Sequence[tuple[IncidentRow, ServiceRow]], *, audit: bool = True
) -> None:
    """`start_escalation` for many new incidents at once: a storm's pages are planned and queued together.

    Policies, calendars, on-call people and their paging rules are read once for the batch, and the pages of
    every first step due now go into the outbox with one multi-row INSERT (notify.queue_messages).
    """
    if audit:
        ensure_auditor(session, clock)
    now = clock.now()
    planner = _Planner(session)
    later: list[tuple[IncidentRow, EscalationStep]] = []
    due: list[tuple[IncidentRow, ServiceRow, EscalationPolicyRow | None, EscalationStepRow]] = []
    for incident, service in opened:
        if service.policy_id is None:
            _event(session, incident.id, "no_policy", now, body="the service has no escalation policy")
            continue
        policy_row = session.get(EscalationPolicyRow, service.policy_id)
        assert policy_row is not None
        # Team round robins begin one further along for each incident, so the load is shared. The turn is the
        # incident's own number, not a counter on the policy: that row, updated by every new incident of a storm,
        # held each one's transaction behind the last until its commit.
        incident.round_robin_offset = rotation_of(incident.number)
        step = _plan_next(planner, incident, service, policy_row, None)
        if step is None:
            _event(session, incident.id, "nobody_to_page", now, body="the policy resolves to nobody")
        elif step.due_at > now:
            later.append((incident, step))
        else:
            # A first step due now (high urgency, no delay) pages in this very transaction: the pages are
            # queued as durably as the incident itself, without a timer to claim and the incident to load again.
            due.append((incident, service, policy_row, _step_row(incident, step)))
    _schedule(session, later)
    _fire(session, clock, due, planner)


def fire_step(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `incident.escalate` timer: page this step's people and arm the next step, all in one transaction."""
    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        incident = session.scalar(
            select(IncidentRow).where(IncidentRow.id == str(payload.get("incident"))).with_for_update()
        )
        step_row = session.scalar(
            select(EscalationStepRow).where(
                EscalationStepRow.incident_id == str(payload.get("incident")),
                EscalationStepRow.generation == int(payload.get("generation", -1)),
                EscalationStepRow.step_no == int(payload.get("step", -1)),
            )
        )
        if incident is None or step_row is None or step_row.state != "scheduled":
            ctx.finish(session)
            return
        if incident.status != IncidentStatus.TRIGGERED or incident.generation != step_row.generation:
            step_row.state = "cancelled"
            ctx.finish(session)
            return
        service = session.get(ServiceRow, incident.service_id)
        assert service is not None
        policy_row = session.get(EscalationPolicyRow, service.policy_id) if service.policy_id else None
        _fire(session, clock, [(incident, service, policy_row, step_row)], _Planner(session))
        ctx.finish(session)


def _fire(
    session: Session,
    clock: Clock,
    steps: Sequence[tuple[IncidentRow, ServiceRow, EscalationPolicyRow | None, EscalationStepRow]],
    planner: _Planner,
) -> None:
    """Page due steps' people now and arm each policy's next step, in the caller's transaction."""
    if not steps:
        return
    now = clock.now()
    people_of: list[list[str]] = []
    for incident, _, policy_row, step_row in steps:
        people = list(step_row.planned_targets)
        if policy_row is not None and step_row.level_index < len(policy_row.levels):
            # Whoever is on call now, not when the step was planned.
            level = planner.policy(policy_row).levels[step_row.level_index]
            current: list[str] = []
            for target in level.targets:
                found = list(planner.resolve(target, now))
                if target.round_robin and found:
                    found = [found[(incident.round_robin_offset + step_row.repeat) % len(found)]]
                current.extend(p for p in found if p not in current)
            people = current or people
        people_of.append(people)
    queued = page_people(
        session,
        clock,
        [
            Page(incident, service, person, step_row.step_no)
            for (incident, service, _, step_row), people in zip(steps, people_of, strict=True)
            for person in people
        ],
    )
    following: list[tuple[IncidentRow, EscalationStep]] = []
    paged_changes: list[events.IncidentChange] = []
    lines: list[dict[str, Any]] = []  # the steps' timeline lines: one multi-row INSERT
    for (incident, service, policy_row, step_row), people in zip(steps, people_of, strict=True):
        paged = [p for p in people if (incident.id, p) in queued]
        step_row.state = "done"
        step_row.fired_at = now
        step_row.paged = people
        lines.append(
            {
                "incident_id": incident.id,
                "kind": "escalated",
                "at": now,
                "actor_id": None,
                "body": f"level {step_row.level_index + 1}"
                + (f", pass {step_row.repeat + 1}" if step_row.repeat else ""),
                "data": {"step": step_row.step_no, "people": people, "paged": paged},
                "internal": True,
            }
        )
        session.add(step_row)  # a step fired as it was planned is new here: one INSERT of the finished step
        if paged:
            paged_changes.append(_change(clock, incident, events.IncidentChangeKind.PAGED, people=paged))
        if policy_row is not None:
            previous = EscalationStep(
                step_row.step_no, step_row.level_index, step_row.repeat, step_row.due_at, tuple(people)
            )
            step = _plan_next(planner, incident, service, policy_row, previous)
            if step is not None:
                following.append((incident, step))
    session.execute(insert(cast(Table, IncidentEventRow.__table__)), lines)
    events.emit_many(session, clock, paged_changes)
    _schedule(session, following)


@dataclass(frozen=True, slots=True)
class Page:
    """One person to page for one step of an incident (`target_prefix` tells responders' pages apart)."""

    incident: IncidentRow
    service: ServiceRow
    person_id: str
    step_no: int
    target_prefix: str = ""


def page_person(
    session: Session,
    clock: Clock,
    incident: IncidentRow,
    service: ServiceRow,
    person_id: str,
    step_no: int,
    target_prefix: str = "",
) -> bool:
    """Queue this person's pages for a step, one per notification rule; False when nothing new was queued."""
    queued = page_people(session, clock, [Page(incident, service, person_id, step_no, target_prefix)])
    return (incident.id, person_id) in queued


def page_people(session: Session, clock: Clock, pages: Sequence[Page]) -> set[tuple[str, str]]:
    """Queue the pages of many (incident, person, step)s, one message per notification rule, in one outbox INSERT.

    Each person and their rules are read once for all of them. Returns the (incident id, person id) pairs for
    which something new was queued (a page whose idempotency key was queued before is not new).
    """
    from zhiban.notify import service as notify
    from zhiban.notify.model import Outgoing
    from zhiban.notify.render import IncidentNotice, render_incident

    if not pages:
        return set()
    now = clock.now()
    _, base = _links()
    people = {pid: identity.person(session, pid) for pid in dict.fromkeys(page.person_id for page in pages)}
    found = [pid for pid, person in people.items() if person is not None]
    rules = {
        urgency: notify.paging_rules_many(session, found, urgency)
        for urgency in dict.fromkeys(page.incident.urgency for page in pages)
    }
    outgoing: list[Outgoing] = []
    owners: list[tuple[str, str]] = []
    for page in pages:
        incident, person = page.incident, people[page.person_id]
        if person is None:
            continue
        plan: list[tuple[str, str | None, Mapping[str, Any], int]] = [
            (method.channel, method.id, method.config, rule.delay_minutes)
            for rule, method in rules[incident.urgency].get(person.id, ())
        ]
        if not plan:
            # Someone with no rules is still paged: by e-mail at once.
            plan = [("email", None, {"to": [person.email]}, 0)]
        notice = IncidentNotice(
            kind="page",
            title=incident.title[:200],
            severity=incident.severity,
            service=page.service.name[:100],
            since=incident.triggered_at,
            timezone=person.timezone,
            ack_url=ack_url(incident.id, person.id, now),
            incident_url=f"{base}/incidents/{incident.id}",
        )
        language: Literal["zh", "en"] = "zh" if person.language == "zh" else "en"
        for channel, method_id, config, delay in plan:
            target = f"{page.target_prefix}{person.id}.{method_id or channel}"
            key = step_key(incident.id, page.step_no, target, incident.generation)
            outgoing.append(
                Outgoing(
                    message=render_incident(notice, language, key),
                    subject_kind="incident",
                    subject_id=incident.id,
                    channel=channel,
                    config=config,
                    due_at=now + timedelta(minutes=delay),
                    person_id=person.id,
                    contact_method_id=method_id,
                )
            )
            owners.append((incident.id, person.id))
    results = notify.queue_messages(session, clock, outgoing)
    return {owner for owner, (_, new) in zip(owners, results, strict=True) if new}


def _stop_paging(session: Session, clock: Clock, incident: IncidentRow, reason: str) -> None:
    from zhiban.notify import service as notify

    steps = list(
        session.scalars(
            select(EscalationStepRow).where(
                EscalationStepRow.incident_id == incident.id, EscalationStepRow.state == "scheduled"
            )
        )
    )
    for step in steps:
        step.state = "cancelled"
        cancel(session, _escalate_key(incident.id, step.generation, step.step_no))
    notify.cancel_pending(session, clock, "incident", incident.id, reason)


def ensure_auditor(session: Session, clock: Clock) -> None:
    now = clock.now()
    bucket = int(now.timestamp() // AUDIT_EVERY.total_seconds())
    # Insert-if-absent in one statement: every batch that opens an incident passes here.
    enqueue_many(session, [(AUDIT_JOB, {}, now + AUDIT_EVERY, f"incident.audit:{bucket + 1}")])
