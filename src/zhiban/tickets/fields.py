"""A ticket's RTC fields: checked against the customer's own apps, stored in one row beside the ticket.

Kept apart from `service.py` so that filing a ticket only pays for them when some are given (one INSERT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.apps import service as apps
from zhiban.core.errors import InvalidInput
from zhiban.identity import service as identity
from zhiban.tickets.model import FIELD_NAMES, RtcFields, clean_fields
from zhiban.tickets.store import TicketFieldsRow, ids_in


def check_app(session: Session, organization_id: str, fields: RtcFields) -> RtcFields:
    """Refuse an app id that is not one of the organization's apps (another tenant's app reads as unknown)."""
    if fields.app_id is not None:
        owned = {a.app_id for a in apps.list_apps(session, apps.SYSTEM, organization_id)}
        if fields.app_id not in owned:
            raise InvalidInput(f"app_id {fields.app_id!r} is not one of this organization's apps")
    return fields


def organization_zone(session: Session, organization_id: str) -> str:
    """The customer's time zone: a time given without an offset is read there."""
    org = identity.organization(session, organization_id)
    return org.timezone if org is not None else "UTC"


def save(session: Session, ticket_id: int, fields: RtcFields) -> None:
    """Write the ticket's fields (none given: no row, and an existing one is removed)."""
    row = session.get(TicketFieldsRow, ticket_id)
    if fields.empty:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = TicketFieldsRow(ticket_id=ticket_id)
        session.add(row)
    row.app_id, row.channel_name, row.user_ids = fields.app_id, fields.channel_name, list(fields.user_ids)
    row.sdk_version, row.platform, row.occurred_at = fields.sdk_version, fields.platform, fields.occurred_at


def _value(row: Any) -> RtcFields:
    return RtcFields(
        app_id=row.app_id,
        channel_name=row.channel_name,
        user_ids=tuple(row.user_ids or ()),
        sdk_version=row.sdk_version,
        platform=row.platform,
        occurred_at=row.occurred_at,
    )


def fields_of(session: Session, ticket_ids: Sequence[int]) -> dict[int, RtcFields]:
    """The fields of many tickets by id (tickets without any are left out)."""
    ids = sorted(set(ticket_ids))
    found: dict[int, RtcFields] = {}
    # Plain rows: no ORM objects to build for a page of tickets.
    columns = (
        TicketFieldsRow.ticket_id,
        TicketFieldsRow.app_id,
        TicketFieldsRow.channel_name,
        TicketFieldsRow.user_ids,
        TicketFieldsRow.sdk_version,
        TicketFieldsRow.platform,
        TicketFieldsRow.occurred_at,
    )
    for i in range(0, len(ids), 2000):
        query = select(*columns).where(ids_in(session, TicketFieldsRow.ticket_id, ids[i : i + 2000]))
        found.update((row.ticket_id, _value(row)) for row in session.execute(query))
    return found


def lenient(session: Session, organization_id: str, raw: Mapping[str, object], *, now: datetime) -> RtcFields:
    """Fields recognized in free text (a mail): each one that fails its check is dropped, never the message."""
    zone = organization_zone(session, organization_id)
    kept: dict[str, object] = {}
    for name in FIELD_NAMES:
        if name not in raw:
            continue
        try:
            one = clean_fields(**{name: raw[name]}, now=now, zone=zone)  # type: ignore[arg-type]
            check_app(session, organization_id, one)
        except InvalidInput:
            continue
        kept[name] = getattr(one, name)
    return RtcFields(**kept)  # type: ignore[arg-type]
