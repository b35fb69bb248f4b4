"""The one outbox: every message to a person or an address is queued here, in the caller's transaction.

Pages, SLA warnings and breaches, on-call gap notices, customer notices, status updates and ticket mail
all become rows of `notifications`, sent by the one `notify.deliver` job (rate limits, retries, channels).
A feature hears how its messages ended through `service.on_result`, telling them apart by `subject_kind`.
Mail threading (Message-ID, References, Reply-To) is passed through as given: the caller owns the thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.notify import service
from zhiban.notify.model import Message
from zhiban.notify.store import NotificationRow

MAX_LIST = 500
STATES = ("pending", "sending", "sent", "failed", "cancelled")


def queue_email(
    session: Session,
    clock: Clock,
    *,
    message: Message,
    to: str | Sequence[str],
    subject_kind: str,
    subject_id: str | int,
    person_id: str | None = None,
    ticket_id: int | None = None,
    reply_to: str | None = None,
    due_at: datetime | None = None,
    from_address: str | None = None,
) -> tuple[str, bool]:
    """Queue one e-mail (to a person, a customer contact or a subscriber); (id, False) when its key was queued before.

    The message's `message_id` and `references` become Message-ID, In-Reply-To and References; `reply_to`
    becomes Reply-To, `from_address` the From: header (else the relay's sender; the envelope sender stays the
    relay's). Raises InvalidInput for an address the channel refuses, before anything is stored.
    """
    config: dict[str, Any] = {"to": [to] if isinstance(to, str) else list(to)}
    if reply_to is not None:
        config["reply_to"] = reply_to
    if from_address is not None:
        config["from_address"] = from_address
    return service.queue_message(
        session,
        clock,
        message=message,
        subject_kind=subject_kind,
        subject_id=str(subject_id),
        channel="email",
        config=config,
        due_at=due_at or clock.now(),
        person_id=person_id,
        ticket_id=ticket_id,
    )


def recent(
    session: Session,
    *,
    kind: str | None = None,
    state: str | None = None,
    ticket_id: int | None = None,
    limit: int = 100,
) -> list[NotificationRow]:
    """The outbox for audit, newest first: messages of every kind with their delivery state."""
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be 1-{MAX_LIST}")
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {STATES}")
    query = select(NotificationRow)
    if kind:
        # A family ("sla") or one kind ("sla.breach").
        query = query.where(
            (NotificationRow.kind == kind) | NotificationRow.kind.startswith(f"{kind}.", autoescape=True)
        )
    if state is not None:
        query = query.where(NotificationRow.state == state)
    if ticket_id is not None:
        query = query.where(NotificationRow.ticket_id == ticket_id)
    order = (NotificationRow.created_at.desc(), NotificationRow.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))
