"""Triage API: a ticket's domain, confidence, suggested priority and team; an agent's correction."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from zhiban.triage import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import TicketId
from zhiban.web.scopes import by_method

router = APIRouter(prefix="/api/v1/tickets", tags=["triage"], dependencies=[by_method("tickets:read", "tickets:write")])

DomainIn = Literal[
    "network",
    "video",
    "audio",
    "signaling_join",
    "auth_token",
    "sdk_integration",
    "recording_streaming",
    "billing_account",
    "server_deployment",
]


class TriageOut(BaseModel):
    ticket_id: int
    domain: str
    predicted_domain: str
    confidence: float
    suggested_priority: str
    team_id: str | None
    team: str | None
    model_version: int | None
    corrected: bool
    corrected_by: str | None

    @classmethod
    def of(cls, view: service.TriageView) -> TriageOut:
        return cls(
            ticket_id=view.ticket_id,
            domain=view.domain,
            predicted_domain=view.predicted_domain,
            confidence=view.confidence,
            suggested_priority=view.suggested_priority,
            team_id=view.team_id,
            team=view.team_name,
            model_version=view.model_version,
            corrected=view.corrected,
            corrected_by=view.corrected_by,
        )


class CorrectionIn(BaseModel):
    domain: DomainIn


@router.get("/{ticket_id}/triage", response_model=TriageOut, summary="A ticket's triage (agents)")
def get(session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TriageOut:
    principal.require_scope("tickets:read")
    return TriageOut.of(service.get_triage(session, clock, principal, ticket_id))


@router.post("/{ticket_id}/triage", response_model=TriageOut, summary="Correct a ticket's domain (agents)")
def correct(
    body: CorrectionIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> TriageOut:
    principal.require_scope("tickets:write")
    return TriageOut.of(service.correct_triage(session, clock, principal, ticket_id, body.domain))
