"""Use cases of triage: classify each new ticket, suggest its priority, route it to a team, learn from corrections."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role, Team
from zhiban.tickets import service as tickets
from zhiban.tickets.model import TicketRef
from zhiban.triage import store
from zhiban.triage.evaluate import default_tickets
from zhiban.triage.model import (
    DOMAINS,
    MAX_BODY_CHARS,
    MAX_SUBJECT_CHARS,
    TriageExample,
    TriageModel,
    parse_examples,
    suggest_priority,
)
from zhiban.triage.store import TriageModelRow, TriageRow

# The team queue of each domain, best first: the demo desk has Network, Video & Audio and SDK &
# Integration teams; a desk with a team for the exact domain gets it, otherwise the closest one.
TEAM_DOMAINS: dict[str, tuple[str, ...]] = {
    "network": ("network",),
    "video": ("video", "audio"),
    "audio": ("audio", "video"),
    "signaling_join": ("signaling_join", "network", "sdk_integration"),
    "auth_token": ("auth_token", "sdk_integration"),
    "sdk_integration": ("sdk_integration",),
    "recording_streaming": ("recording_streaming", "video"),
    "billing_account": ("billing_account",),
    "server_deployment": ("server_deployment", "network"),
}
# Triage reads tickets as the desk itself, not as a person: it may see every organization's tickets.
_DESK = Principal(person_id="triage", role=Role.AGENT, organization_id=None, name="triage")


# ---- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainReport:
    version: int
    examples: int
    corrections: int
    trained: bool  # False: the newest model already had exactly these examples


# Per process, and safe with several: a model is keyed by the fingerprint of what it was trained on, so never stale.
_models: dict[str, TriageModel] = {}  # by fingerprint of the training examples
_model_bytes: dict[str, bytes] = {}
_lock = threading.Lock()


def _fingerprint(examples: list[TriageExample]) -> str:
    rows = [[e.subject, e.body, e.domain, e.lang] for e in examples]
    return hashlib.sha256(orjson.dumps(rows)).hexdigest()


def _ticket_text(session: Session, ticket_id: int) -> tuple[str, str]:
    view = tickets.get_ticket(session, _DESK, ticket_id)
    body = view.comments[0].body if view.comments else ""
    return view.ticket.subject[:MAX_SUBJECT_CHARS], body[:MAX_BODY_CHARS]


def corrections(session: Session) -> list[TriageExample]:
    """Agents' corrections as labelled tickets (subject, first message, corrected domain)."""
    out = []
    for row in store.corrected_rows(session):
        if row.corrected_domain in DOMAINS:
            subject, body = _ticket_text(session, row.ticket_id)
            out.append(TriageExample(subject, body, row.corrected_domain))
    return out


def _trained(examples: list[TriageExample]) -> tuple[str, TriageModel, bytes]:
    fingerprint = _fingerprint(examples)
    with _lock:
        if fingerprint not in _models:
            model = TriageModel.train(examples)
            _models[fingerprint] = model
            _model_bytes[fingerprint] = model.to_bytes()
        return fingerprint, _models[fingerprint], _model_bytes[fingerprint]


def retrain(session: Session, clock: Clock) -> TrainReport:
    """Train on the shipped labelled tickets plus every stored correction; store the model as a new version."""
    fixed = corrections(session)
    examples = [*parse_examples(default_tickets()), *fixed]
    fingerprint, _, data = _trained(examples)
    latest = store.latest_model(session)
    if latest is not None and latest.fingerprint == fingerprint:
        return TrainReport(latest.id, latest.examples, latest.corrections, trained=False)
    row = TriageModelRow(
        fingerprint=fingerprint, examples=len(examples), corrections=len(fixed), model=data, created_at=clock.now()
    )
    session.add(row)
    session.flush()
    return TrainReport(row.id, len(examples), len(fixed), trained=True)


def ready_model(session: Session, clock: Clock) -> tuple[int, TriageModel] | None:
    """The model in use if this process can apply it at once (trained and loaded here), else None.

    Training takes seconds and loading scikit-learn too: a ticket filed before that is triaged by a job,
    so filing a ticket never waits for a model.
    """
    newest = session.execute(
        select(TriageModelRow.id, TriageModelRow.fingerprint).order_by(TriageModelRow.id.desc()).limit(1)
    ).first()
    if newest is None:
        default = _fingerprint(parse_examples(default_tickets()))
        if default not in _models:
            return None
        return current_model(session, clock)  # stores the model this process already trained
    return (newest[0], _models[newest[1]]) if newest[1] in _models else None


def current_model(session: Session, clock: Clock) -> tuple[int, TriageModel]:
    """(version, model) in use; trains and stores one on first use."""
    newest = session.execute(
        select(TriageModelRow.id, TriageModelRow.fingerprint).order_by(TriageModelRow.id.desc()).limit(1)
    ).first()
    if newest is None:
        version = retrain(session, clock).version
        newest = session.execute(
            select(TriageModelRow.id, TriageModelRow.fingerprint).where(TriageModelRow.id == version)
        ).one()
    version, fingerprint = newest
    model = _models.get(fingerprint)
    if model is None:
        row = session.get(TriageModelRow, version)
        assert row is not None
        model = TriageModel.from_bytes(row.model)
        with _lock:
            _models[fingerprint] = model
    return version, model


# ---- triage of tickets ---------------------------------------------------------------------------


def team_for(session: Session, domain: str) -> Team | None:
    """The team whose queue takes a domain: the first team for it or its closest neighbour; None if none."""
    for team_domain in TEAM_DOMAINS.get(domain, (domain,)):
        found = identity.teams(session, domain=team_domain, limit=1)
        if found:
            return found[0]
    return None


def open_incident_for(session: Session, ticket: TicketRef) -> bool:
    """Whether an open incident affects the ticket's organization: its own, or one its tickets are linked to
    (the detector links a ticket filed during a telemetry incident before triage runs)."""
    from zhiban.incidents.service import open_incidents_for_org

    return bool(open_incidents_for_org(session, ticket.organization_id))


def triage_ticket(session: Session, clock: Clock, ticket: TicketRef) -> TriageRow:
    """Classify a ticket, suggest a priority, and route it to its domain's team if it has none yet."""
    version, model = current_model(session, clock)
    subject, body = _ticket_text(session, ticket.id)
    prediction = model.predict(subject, body)
    organization = identity.get_organization(session, _DESK, ticket.organization_id)
    text = f"{subject}\n{body}"[: MAX_SUBJECT_CHARS + MAX_BODY_CHARS]
    priority = suggest_priority(text, organization.plan, open_incident_for(session, ticket))
    team = team_for(session, prediction.domain)
    row = session.get(TriageRow, ticket.id)
    if row is None:
        row = TriageRow(ticket_id=ticket.id)
        session.add(row)
    row.domain = prediction.domain
    row.confidence = round(prediction.confidence, 4)
    row.suggested_priority = priority
    row.team_id = team.id if team else None
    row.model_version = version
    row.created_at = clock.now()
    if team is not None:
        tickets.route(session, clock, ticket.id, team.id, unless_routed=True)
    session.flush()
    return row


def triage_new(session: Session, clock: Clock, refs: Sequence[TicketRef]) -> int:
    """Triage many new tickets at once (those without a triage yet), as `triage_ticket` would each: one model
    pass and a few queries for the whole batch. Returns how many were triaged."""
    ids = sorted({r.id for r in refs})
    done = store.triaged_among(session, ids)
    todo = [i for i in ids if i not in done]
    texts = tickets.first_messages(session, todo)
    todo = [i for i in todo if i in texts]  # a ticket deleted meanwhile needs no triage
    if not todo:
        return 0
    version, model = current_model(session, clock)
    pairs = [(texts[i][0][:MAX_SUBJECT_CHARS], texts[i][1][:MAX_BODY_CHARS]) for i in todo]
    predictions = model.predict_many(pairs)
    org_of = {r.id: r.organization_id for r in refs}
    plans: dict[str, str] = {}
    incidents: dict[str, bool] = {}
    teams: dict[str, Team | None] = {}
    now = clock.now()
    routes: dict[int, str] = {}
    rows = []
    for ticket_id, (subject, body), prediction in zip(todo, pairs, predictions, strict=True):
        ref = TicketRef(ticket_id, org_of[ticket_id])
        if ref.organization_id not in plans:
            plans[ref.organization_id] = identity.get_organization(session, _DESK, ref.organization_id).plan
            incidents[ref.organization_id] = open_incident_for(session, ref)
        if prediction.domain not in teams:
            teams[prediction.domain] = team_for(session, prediction.domain)
        text = f"{subject}\n{body}"[: MAX_SUBJECT_CHARS + MAX_BODY_CHARS]
        team = teams[prediction.domain]
        rows.append(
            {
                "ticket_id": ticket_id,
                "domain": prediction.domain,
                "confidence": round(prediction.confidence, 4),
                "suggested_priority": suggest_priority(
                    text, plans[ref.organization_id], incidents[ref.organization_id]
                ),
                "team_id": team.id if team else None,
                "model_version": version,
                "created_at": now,
            }
        )
        if team is not None:
            routes[ticket_id] = team.id
    store.add_triages(session, rows)
    tickets.route_new(session, clock, routes)
    return len(rows)


@dataclass(frozen=True)
class TriageView:
    """A ticket's triage as agents see it: the model's answer, the correction, and the team."""

    ticket_id: int
    domain: str  # the corrected domain if an agent corrected it
    predicted_domain: str
    confidence: float
    suggested_priority: str
    team_id: str | None
    team_name: str | None
    model_version: int | None
    corrected_by: str | None
    corrected: bool


def _view(session: Session, row: TriageRow) -> TriageView:
    team = identity.team(session, row.team_id, by_name=False)
    return TriageView(
        ticket_id=row.ticket_id,
        domain=row.corrected_domain or row.domain,
        predicted_domain=row.domain,
        confidence=row.confidence,
        suggested_priority=row.suggested_priority,
        team_id=row.team_id,
        team_name=team.name if team else None,
        model_version=row.model_version,
        corrected_by=row.corrected_by,
        corrected=row.corrected_domain is not None,
    )


def get_triage(session: Session, clock: Clock, principal: Principal, ticket_id: int) -> TriageView:
    """A ticket's triage (staff); a ticket filed before triage existed is triaged now."""
    principal.require_staff()
    ticket = tickets.get_ticket(session, principal, ticket_id).ref
    row = session.get(TriageRow, ticket.id)
    if row is None:
        row = triage_ticket(session, clock, ticket)
    return _view(session, row)


def correct_triage(session: Session, clock: Clock, principal: Principal, ticket_id: int, domain: str) -> TriageView:
    """An agent sets the right domain: kept as training data, and the ticket goes to that domain's team."""
    principal.require_staff()
    if domain not in DOMAINS:
        raise InvalidInput(f"domain must be one of {', '.join(DOMAINS)}")
    ticket = tickets.get_ticket(session, principal, ticket_id).ref
    row = session.get(TriageRow, ticket.id) or triage_ticket(session, clock, ticket)
    row.corrected_domain = domain
    row.corrected_by = principal.person_id
    row.corrected_at = clock.now()
    team = team_for(session, domain)
    row.team_id = team.id if team else None
    tickets.route(session, clock, ticket.id, row.team_id)
    session.flush()
    return _view(session, row)


def model_info(session: Session) -> TriageModelRow | None:
    """The stored model in use, if any (without loading it)."""
    version = store.latest_model_version(session)
    if version is None:
        return None
    row = session.get(TriageModelRow, version)
    if row is None:
        raise NotFound("the triage model vanished")
    return row
