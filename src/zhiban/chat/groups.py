"""Chat groups' configuration (admins): each platform's app, the groups bound to organizations, platform users
known as customer users, and the events the desk acted on."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.chat import store as chat_store
from zhiban.chat.model import (
    Platform,
    check_id,
    clean_words,
)
from zhiban.chat.store import (
    ChatAppRow,
    ChatEventRow,
    ChatGroupRow,
    ChatPersonRow,
)
from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal, Role

log = logging.getLogger("zhiban.chat")

MAX_LIST = 200


def _platform(value: str) -> Platform:
    try:
        return Platform(value)
    except ValueError:
        raise InvalidInput(f"platform must be one of {', '.join(p.value for p in Platform)}") from None


# --- the platforms' apps (admins) -------------------------------------------------------------------

_APP_FIELDS = {
    Platform.SLACK: ("signing_secret", "bot_token", "bot_user_id", "api_url"),
    Platform.FEISHU: ("app_id", "app_secret", "verification_token", "encrypt_key", "bot_user_id", "api_url"),
    Platform.DINGTALK: ("app_id", "app_secret", "bot_user_id"),
}
_REQUIRED = {
    Platform.DINGTALK: ("app_secret",),
    Platform.SLACK: ("signing_secret", "bot_token"),
    Platform.FEISHU: ("app_id", "app_secret", "verification_token"),
}


def set_app(
    session: Session, clock: Clock, principal: Principal, platform: str, fields: Mapping[str, str | None]
) -> ChatAppRow:
    """Configure a platform's app: what checks its events and what its bot posts with (admins).

    Fields not given keep their value; a Slack app needs its signing secret and bot token, a Feishu app its id,
    secret and verification token (its Encrypt Key when events are encrypted)."""
    principal.require_admin()
    kind = _platform(platform)
    unknown = set(fields) - set(_APP_FIELDS[kind])
    if unknown:
        raise InvalidInput(f"a {kind.value} app has no {', '.join(sorted(unknown))}")
    row = session.get(ChatAppRow, kind.value)
    if row is None:
        row = ChatAppRow(platform=kind.value, updated_at=clock.now())
        session.add(row)
    for name, value in fields.items():
        if value is None:
            continue
        value = value.strip()
        if len(value) > 500:
            raise InvalidInput(f"{name} is at most 500 characters")
        if name == "api_url" and value:
            from zhiban.notify.egress import check_url

            check_url(value)  # the bot posts there: an internal address is refused as any webhook's is
        if name in ("bot_user_id", "app_id") and value:
            check_id(value, name)
        setattr(row, name, value)
    missing = [name for name in _REQUIRED[kind] if not getattr(row, name)]
    if missing:
        raise InvalidInput(f"a {kind.value} app needs {', '.join(missing)}")
    row.updated_at = clock.now()
    session.flush()
    return row


def apps(session: Session, principal: Principal) -> list[ChatAppRow]:
    principal.require_admin()
    return list(session.scalars(select(ChatAppRow).order_by(ChatAppRow.platform)))


def app_of(session: Session, platform: Platform) -> ChatAppRow:
    row = session.get(ChatAppRow, platform.value)
    if row is None:
        raise NotFound(f"no {platform.value} app is configured on this desk")
    return row


# --- groups and people (admins) ----------------------------------------------------------------------


def _customer_of(session: Session, ref: str, organization_id: str, what: str) -> Person:
    person = identity.find_person(session, ref)
    if person is None or not person.active or person.role != Role.CUSTOMER or person.organization_id != organization_id:
        raise InvalidInput(f"{what} must name an active customer user of the group's organization")
    return person


def bind_group(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    platform: str,
    group_id: str,
    organization: str,
    requester: str | None = None,
    keywords: Sequence[str] | None = None,
    urgent_words: Sequence[str] | None = None,
    name: str = "",
) -> ChatGroupRow:
    """Bind a group to one organization (admins): its messages file that organization's tickets."""
    principal.require_admin()
    kind = _platform(platform)
    check_id(group_id, "group_id")
    if len(name) > 200:
        raise InvalidInput("name is at most 200 characters")
    org = identity.organization(session, organization) or identity.organization_with_slug(session, organization)
    if org is None:
        raise InvalidInput(f"no organization {organization!r}")
    requester_id = _customer_of(session, requester, org.id, "requester").id if requester else None
    if chat_store.group_of(session, kind.value, group_id) is not None:
        raise Conflict(f"the {kind.value} group {group_id} is already bound; unbind it first")
    row = ChatGroupRow(
        platform=kind.value,
        group_id=group_id,
        name=name.strip(),
        organization_id=org.id,
        requester_id=requester_id,
        keywords=list(clean_words(keywords, "keywords")),
        urgent_words=None if urgent_words is None else list(clean_words(urgent_words, "urgent_words")),
        created_at=clock.now(),
        created_by=principal.person_id,
    )
    session.add(row)
    session.flush()
    log.info("chat group %s:%s bound to %s by %s", kind.value, group_id, org.slug, principal.person_id)
    return row


def _group(session: Session, ref: str) -> ChatGroupRow:
    row = session.get(ChatGroupRow, ref)
    if row is None and ":" in ref:
        platform, _, group_id = ref.partition(":")
        row = chat_store.group_of(session, platform, group_id)
    if row is None:
        raise NotFound(f"no bound chat group {ref[:140]!r}")
    return row


def unbind_group(session: Session, principal: Principal, ref: str) -> None:
    """Unbind a group (by id, or platform:group_id): its messages are refused from now on (admins)."""
    principal.require_admin()
    row = _group(session, ref)
    session.delete(row)
    session.flush()


def groups(session: Session, principal: Principal) -> list[ChatGroupRow]:
    principal.require_admin()
    order = (ChatGroupRow.platform, ChatGroupRow.group_id)
    return list(session.scalars(select(ChatGroupRow).order_by(*order).limit(1000)))


def map_person(session: Session, principal: Principal, *, platform: str, user_id: str, person: str) -> ChatPersonRow:
    """Know a platform user as a customer user (admins): their messages are filed in their name."""
    principal.require_admin()
    kind = _platform(platform)
    check_id(user_id, "user_id")
    found = identity.find_person(session, person)
    if found is None or not found.active or found.role != Role.CUSTOMER or found.organization_id is None:
        raise InvalidInput("person must name an active customer user")
    row = session.get(ChatPersonRow, (kind.value, user_id))
    if row is None:
        row = ChatPersonRow(platform=kind.value, user_id=user_id, person_id=found.id)
        session.add(row)
    row.person_id = found.id
    session.flush()
    return row


def recent_events(session: Session, principal: Principal, *, limit: int = 50) -> list[ChatEventRow]:
    """The events the desk acted on, newest first (admins)."""
    principal.require_admin()
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be 1-{MAX_LIST}")
    query = (
        select(ChatEventRow)
        .where(ChatEventRow.action != chat_store.MESSAGE_CLAIM_ACTION)
        .order_by(ChatEventRow.received_at.desc(), ChatEventRow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
