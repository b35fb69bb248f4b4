"""Tickets in the domain: statuses, priorities, channels, the changes other features hear of, and who may
move a ticket where."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from zhiban.core.errors import Forbidden, InvalidInput


class Status(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # waiting on the customer
    ON_HOLD = "on_hold"  # waiting on a third party
    SOLVED = "solved"
    CLOSED = "closed"


class Priority(enum.StrEnum):
    P1 = "P1"  # urgent: production down
    P2 = "P2"  # high
    P3 = "P3"  # normal
    P4 = "P4"  # low


def priority_choices(current: Priority, *, staff: bool) -> tuple[Priority, ...]:
    """The priorities a person may give a ticket now at `current`: agents any; a customer only a more urgent
    one (it got worse), never a less urgent one: saying it got better is the agents' call."""
    if staff:
        return tuple(p for p in Priority if p != current)
    return tuple(p for p in Priority if p.value < current.value)  # P1 < P2 < …: more urgent sorts first


class Channel(enum.StrEnum):
    PORTAL = "portal"
    AGENT = "agent"
    API = "api"
    EMAIL = "email"
    CHAT = "chat"  # a customer's chat group (Slack, Feishu): zhiban.chat


class EventKind(enum.StrEnum):
    """What happened to a ticket: the kinds of its event log, and of the changes it publishes."""

    CREATED = "created"
    CUSTOMER_MESSAGE = "customer_message"
    AGENT_REPLY = "agent_reply"
    INTERNAL_NOTE = "internal_note"
    STATUS_CHANGED = "status_changed"
    PRIORITY_CHANGED = "priority_changed"
    ASSIGNED = "assigned"
    # On duty: the engineer on call was paged for this ticket, acknowledged, or the page closed.
    URGENT_REQUESTED = "urgent_requested"
    ON_DUTY_PAGED = "on_duty_paged"
    ON_DUTY_ACKNOWLEDGED = "on_duty_acknowledged"
    ON_DUTY_CLOSED = "on_duty_closed"


# The on-duty kinds record paging, not the conversation: no SLA clock moves on them.
ON_DUTY_KINDS = frozenset(
    {EventKind.URGENT_REQUESTED, EventKind.ON_DUTY_PAGED, EventKind.ON_DUTY_ACKNOWLEDGED, EventKind.ON_DUTY_CLOSED}
)


@dataclass(frozen=True, slots=True)
class TicketRef:
    """Which ticket, and whose: enough for another feature to find its own rows of it."""

    id: int
    organization_id: str


@dataclass(frozen=True, slots=True)
class TicketSummary:
    """What another feature shows or tells of a ticket: its subject, state and who has it (never its conversation)."""

    id: int
    organization_id: str
    subject: str
    priority: str
    status: str
    created_at: datetime
    team_id: str | None = None
    assignee_id: str | None = None


@dataclass(frozen=True, slots=True)
class OnDuty:
    """Whether an engineer on duty was woken for a ticket: what the customer and the agent see of its page."""

    incident_id: str
    reason: str  # priority (the plan's paging priorities) | urgent (the customer asked) | drill
    requested_at: datetime
    paged_at: datetime | None = None  # the first page handed to a channel
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None  # a display name
    closed_at: datetime | None = None  # the incident resolved


@dataclass(frozen=True, slots=True)
class TicketChange:
    """One entry of a ticket's event log, as published to other features (a value: never a table row)."""

    ticket: TicketRef
    kind: EventKind
    at: datetime
    seq: int  # the log's order: later changes have higher numbers
    actor_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Cheap when given an EventKind and a read-only mapping already (batch replays build many).
        if type(self.kind) is not EventKind:
            object.__setattr__(self, "kind", EventKind(self.kind))
        if type(self.data) is not MappingProxyType:
            object.__setattr__(self, "data", MappingProxyType(dict(self.data or {})))

    @property
    def priority(self) -> Priority | None:
        """The priority this change sets: at creation, or when it is changed."""
        value = self.data.get("priority") if self.kind == EventKind.CREATED else None
        if self.kind == EventKind.PRIORITY_CHANGED:
            value = self.data.get("to")
        return Priority(value) if value else None

    @property
    def status(self) -> Status | None:
        """The status this change moves the ticket to (None if it does not move it)."""
        value = self.data.get("to") if self.kind == EventKind.STATUS_CHANGED else None
        return Status(value) if value else None

    @property
    def comment_id(self) -> int | None:
        """The comment a message, reply or note added."""
        value = self.data.get("comment_id")
        return value if isinstance(value, int) else None


# Where an agent may move a ticket from each status; closed is final (a reply opens a follow-up).
AGENT_MOVES: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED}),
    Status.OPEN: frozenset({Status.PENDING, Status.ON_HOLD, Status.SOLVED}),
    Status.PENDING: frozenset({Status.OPEN, Status.ON_HOLD, Status.SOLVED}),
    Status.ON_HOLD: frozenset({Status.OPEN, Status.PENDING, Status.SOLVED}),
    Status.SOLVED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}
# A customer may only mark its own ticket solved, or reopen a solved one.
CUSTOMER_MOVES: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.SOLVED}),
    Status.OPEN: frozenset({Status.SOLVED}),
    Status.PENDING: frozenset({Status.SOLVED}),
    Status.ON_HOLD: frozenset({Status.SOLVED}),
    Status.SOLVED: frozenset({Status.OPEN}),
    Status.CLOSED: frozenset(),
}

MAX_SUBJECT = 200
MAX_BODY = 100_000


def check_move(current: Status, target: Status, *, is_staff: bool) -> None:
    """Refuse a status change the caller may not make."""
    if current == target:
        raise InvalidInput(f"the ticket is already {target.value}")
    moves = AGENT_MOVES if is_staff else CUSTOMER_MOVES
    if target not in moves[current]:
        if not is_staff and target in AGENT_MOVES[current]:
            raise Forbidden(f"only an agent may move a ticket from {current.value} to {target.value}")
        raise InvalidInput(f"a ticket cannot go from {current.value} to {target.value}")


def status_after_customer_message(current: Status) -> Status:
    """A customer's message wakes the ticket: pending and solved tickets open again."""
    if current in (Status.PENDING, Status.SOLVED):
        return Status.OPEN
    return current


def status_after_agent_reply(current: Status) -> Status:
    """An agent's first public reply opens a new ticket."""
    return Status.OPEN if current == Status.NEW else current


def clean_subject(subject: str) -> str:
    subject = " ".join(subject.split())
    if not subject:
        raise InvalidInput("a ticket needs a subject")
    if len(subject) > MAX_SUBJECT:
        raise InvalidInput(f"the subject is longer than {MAX_SUBJECT} characters")
    return subject


def clean_body(body: str) -> str:
    body = body.strip()
    if not body:
        raise InvalidInput("the message is empty")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the message is longer than {MAX_BODY} characters")
    return body
