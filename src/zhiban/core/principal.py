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


# Scopes an API token may carry; a person's role still bounds what a scope allows.
SCOPES = frozenset({"tickets:read", "tickets:write", "admin", "telemetry:write", "incidents:write"})
DEFAULT_SCOPES = ("tickets:read", "tickets:write")


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

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"the token lacks the scope {scope!r}")
