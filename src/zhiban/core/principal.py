"""Who is asking: the principal every edge resolves and every service checks (roles, scopes, tenancy).

Kept in core so that the web shell can carry it without depending on identity, which decides who it is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from zhiban.core.errors import Forbidden


class Role(enum.StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    CUSTOMER = "customer"


# Scopes an API token may carry; a person's role still bounds what a scope allows. A `:write` scope implies its
# `:read`; `admin` implies every scope and is what lets an admin's token act as an admin. Browser sessions hold every
# scope (their role is the only bound); scopes narrow tokens only. Every route declares the scope it needs
# (web/scopes.py; tests/web/test_scopes.py fails on a route that declares none).
SCOPE_DESCRIPTIONS = {
    "tickets:read": "read tickets, their SLA clocks and triage; SLA plans and calendars; the directory",
    "tickets:write": "file and answer tickets, change their status, correct triage",
    "incidents:read": "read incidents, escalation policies, services, pages sent, status pages",
    "incidents:write": "acknowledge, resolve and annotate incidents; post status updates; drills",
    "oncall:read": "read schedules, shifts, contact methods and notification rules",
    "oncall:write": "overrides, iCal feed tokens, your contact methods and notification rules",
    "kb:read": "search and read knowledge-base articles, vote, record deflections",
    "kb:write": "write and edit knowledge-base articles (agents)",
    "telemetry:read": "apps, quality series, sessions, detections, notice webhooks",
    "telemetry:write": "register apps, rotate ingest keys, set notice webhooks",
    "reports:read": "read report figures and exports",
    "admin": "everything, and an admin's powers: people, organizations, plans, integrations, others' tokens",
}
SCOPES = frozenset(SCOPE_DESCRIPTIONS)
# What a token gets when none are asked for: everything but admin (what a token could do before scopes were finer).
DEFAULT_SCOPES = tuple(sorted(SCOPES - {"admin"}))
# Tokens minted before the scopes were split were widened by migration 0003 to what they could do then.


def effective_scopes(scopes: frozenset[str] | set[str] | tuple[str, ...] | list[str]) -> frozenset[str]:
    """The scopes a set of granted scopes amounts to: admin is all, a write implies its read."""
    if "admin" in scopes:
        return SCOPES
    implied = {s.removesuffix(":write") + ":read" for s in scopes if s.endswith(":write")}
    return frozenset(scopes) | (implied & SCOPES)


class MissingScope(Forbidden):
    """The caller's token does not carry the scope this needs."""

    type_ = "missing-scope"
    title = "Missing scope"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a person with a role, bound to an organization if a customer."""

    person_id: str
    role: Role
    organization_id: str | None
    name: str = ""
    language: str = "en"
    timezone: str = "UTC"
    scopes: frozenset[str] = field(default_factory=lambda: frozenset(SCOPES))

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.ADMIN, Role.AGENT)

    def can_see_organization(self, organization_id: str) -> bool:
        """Staff see every organization; a customer only its own."""
        return self.is_staff or self.organization_id == organization_id

    def require_staff(self) -> None:
        if not self.is_staff:
            raise Forbidden("this needs an agent or an admin")

    def require_admin(self) -> None:
        if self.role is not Role.ADMIN:
            raise Forbidden("this needs an admin")

    def has_scope(self, scope: str) -> bool:
        return scope in effective_scopes(self.scopes)

    def require_scope(self, scope: str) -> None:
        if not self.has_scope(scope):
            raise MissingScope(f"the token lacks the scope {scope!r}", scope=scope)
