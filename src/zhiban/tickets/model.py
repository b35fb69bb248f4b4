"""Tickets in the domain: statuses, priorities, channels and who may move a ticket where."""

from __future__ import annotations

import enum

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


class Channel(enum.StrEnum):
    PORTAL = "portal"
    AGENT = "agent"
    API = "api"
    EMAIL = "email"


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
