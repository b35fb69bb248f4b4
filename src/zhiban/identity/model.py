"""Who is asking: roles, principals and the tenancy rule every service applies."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Defined in core, since the web shell carries them; re-exported here: identity decides who is who.
from zhiban.core.principal import DEFAULT_SCOPES as DEFAULT_SCOPES
from zhiban.core.principal import SCOPE_DESCRIPTIONS as SCOPE_DESCRIPTIONS
from zhiban.core.principal import SCOPES as SCOPES
from zhiban.core.principal import MissingScope as MissingScope
from zhiban.core.principal import Principal as Principal
from zhiban.core.principal import Role as Role
from zhiban.core.principal import effective_scopes as effective_scopes


def validate_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Refuse unknown scopes rather than silently dropping them."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        from zhiban.core.errors import InvalidInput

        raise InvalidInput(f"unknown scopes: {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}")
    return tuple(dict.fromkeys(scopes))


E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def e164(value: str) -> str:
    """A phone number in E.164 (+ country code and number, no spaces); InvalidInput otherwise."""
    number = re.sub(r"[\s().-]", "", value.strip())[:32]
    if not E164.fullmatch(number):
        from zhiban.core.errors import InvalidInput

        raise InvalidInput("a phone number must be E.164, such as +8613800138000")
    return number


# -- what other features read of identity: values, never table rows --------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """A person as other features see them: no password, no sessions."""

    id: str
    email: str
    name: str
    role: Role
    organization_id: str | None
    timezone: str = "UTC"
    language: str = "en"
    active: bool = True
    phone: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.ADMIN, Role.AGENT)


@dataclass(frozen=True, slots=True)
class Organization:
    """A customer organization: its plan, and where and in which language it works."""

    id: str
    name: str
    slug: str
    plan: str = "basic"
    country: str = "CN"
    timezone: str = "Asia/Shanghai"
    language: str = "zh"
    dedicated_contact_id: str | None = None
    backup_contact_id: str | None = None
    drill: bool = False  # a drill's synthetic customer


@dataclass(frozen=True, slots=True)
class Team:
    """A support team: the domain it answers for and its lead."""

    id: str
    name: str
    domain: str | None = None
    lead_id: str | None = None
