"""Tickets in the domain: statuses, priorities, channels, the changes other features hear of, and who may
move a ticket where."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

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
    PHONE = "phone"  # the hotline: a call filed it (press 1, or a voicemail)
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
    # Ownership and bookkeeping: who has the ticket, who follows it, how it is filed and what it is tied to.
    TEAM_CHANGED = "team_changed"
    CATEGORY_CHANGED = "category_changed"
    FOLLOWED = "followed"
    UNFOLLOWED = "unfollowed"
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    LINKED = "linked"
    UNLINKED = "unlinked"
    MERGED_INTO = "merged_into"  # this ticket was a duplicate: closed, pointing at the one kept
    MERGED_FROM = "merged_from"  # a duplicate was merged into this ticket
    FIELDS_CHANGED = "fields_changed"  # the RTC fields (app, channel, users, SDK, when)


# The on-duty kinds record paging, not the conversation: no SLA clock moves on them.
ON_DUTY_KINDS = frozenset(
    {EventKind.URGENT_REQUESTED, EventKind.ON_DUTY_PAGED, EventKind.ON_DUTY_ACKNOWLEDGED, EventKind.ON_DUTY_CLOSED}
)


# Bookkeeping kinds move no SLA clock and answer nobody: listeners that replay clocks may skip them.
BOOKKEEPING_KINDS = frozenset(
    {
        EventKind.TEAM_CHANGED,
        EventKind.CATEGORY_CHANGED,
        EventKind.FOLLOWED,
        EventKind.UNFOLLOWED,
        EventKind.TAGGED,
        EventKind.UNTAGGED,
        EventKind.LINKED,
        EventKind.UNLINKED,
        EventKind.MERGED_INTO,
        EventKind.MERGED_FROM,
        EventKind.FIELDS_CHANGED,
    }
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


# --- RTC fields: what lets the desk find the evidence (app, channel, users, SDK, when) ------------------------

MAX_CHANNEL_NAME = 128  # the telemetry's channel column
MAX_USER_IDS = 20
MAX_USER_ID = 128  # the telemetry's user column
MAX_SDK_VERSION = 32
MAX_PLATFORM = 32
OCCURRED_PAST = timedelta(days=366)  # older than a year: no telemetry is kept that long
OCCURRED_FUTURE = timedelta(hours=1)  # a little clock skew, never a date to come
_SDK_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
_PLATFORM = re.compile(r"^[0-9A-Za-z][0-9A-Za-z .+_-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FIELD_NAMES = ("app_id", "channel_name", "user_ids", "sdk_version", "platform", "occurred_at")


@dataclass(frozen=True, slots=True)
class RtcFields:
    """A ticket's RTC fields, each optional: which app (one of the customer's), which channel/room, which users,
    which SDK on which platform, and when it happened (aware, UTC)."""

    app_id: str | None = None
    channel_name: str | None = None
    user_ids: tuple[str, ...] = ()
    sdk_version: str | None = None
    platform: str | None = None
    occurred_at: datetime | None = None

    @property
    def empty(self) -> bool:
        return self == RtcFields()

    def as_json(self) -> dict[str, object]:
        return {
            "app_id": self.app_id,
            "channel_name": self.channel_name,
            "user_ids": list(self.user_ids),
            "sdk_version": self.sdk_version,
            "platform": self.platform,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat() if self.occurred_at else None,
        }


def _short(value: str | None, what: str, limit: int, pattern: re.Pattern[str] | None = None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if not value:
        return None
    if len(value) > limit or _CONTROL.search(value):
        raise InvalidInput(f"{what} is at most {limit} printable characters")
    if pattern is not None and not pattern.match(value):
        raise InvalidInput(f"{what} {value!r} has characters it may not have")
    return value


def clean_user_ids(values: Iterable[str] | None) -> tuple[str, ...]:
    """Distinct user ids in the order given, at most MAX_USER_IDS of at most MAX_USER_ID characters."""
    found: list[str] = []
    for raw in values or ():
        value = _short(raw, "a user id", MAX_USER_ID)
        if value is not None and value not in found:
            found.append(value)
    if len(found) > MAX_USER_IDS:
        raise InvalidInput(f"at most {MAX_USER_IDS} user ids")
    return tuple(found)


def clean_occurred_at(value: datetime | None, *, now: datetime, zone: str = "UTC") -> datetime | None:
    """When it happened, in UTC: a time without an offset is read in `zone` (the customer's), and it must lie
    within the last year and not in the future."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    value = value.astimezone(UTC)
    if value > now + OCCURRED_FUTURE:
        raise InvalidInput("occurred_at is in the future")
    if value < now - OCCURRED_PAST:
        raise InvalidInput("occurred_at is more than a year ago")
    return value


def clean_fields(
    *,
    app_id: str | None = None,
    channel_name: str | None = None,
    user_ids: Sequence[str] | None = None,
    sdk_version: str | None = None,
    platform: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime,
    zone: str = "UTC",
) -> RtcFields:
    """Validate RTC fields given by a customer, an agent or a mail (whether the app is the customer's is the
    service's check)."""
    return RtcFields(
        app_id=_short(app_id, "app_id", 64),
        channel_name=_short(channel_name, "channel_name", MAX_CHANNEL_NAME),
        user_ids=clean_user_ids(user_ids),
        sdk_version=_short(sdk_version, "sdk_version", MAX_SDK_VERSION, _SDK_VERSION),
        platform=_short(platform, "platform", MAX_PLATFORM, _PLATFORM),
        occurred_at=clean_occurred_at(occurred_at, now=now, zone=zone),
    )


# --- ownership: tags, and whom a team's round robin gives a ticket --------------------------------------------

MAX_TAGS = 20
MAX_TAG = 40
_TAG = re.compile(r"^[\w][\w.:+-]*$")  # \w is Unicode: 卡顿 is a tag


def clean_tag(tag: str) -> str:
    """A tag: one word of letters, digits and . : + - _, lower-cased, at most MAX_TAG characters."""
    value = tag.strip().lower()
    if not value or len(value) > MAX_TAG or not _TAG.match(value):
        raise InvalidInput(f"a tag is one word of at most {MAX_TAG} letters, digits or . : + - _")
    return value


WORK_START_HOUR = 9
WORK_END_HOUR = 18


def in_working_hours(zone: str, at: datetime) -> bool:
    """Whether `at` is within a person's working day: Monday to Friday, 09:00–18:00 in their own time zone."""
    try:
        local = at.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        local = at.astimezone(UTC)
    return local.weekday() < 5 and WORK_START_HOUR <= local.hour < WORK_END_HOUR


def next_in_rotation(members: Sequence[str], last: str | None, available: Iterable[str]) -> str | None:
    """Round robin: the first available member after `last` in the team's stable order (wrapping around);
    None when nobody is available."""
    free = set(available)
    if not members or not free:
        return None
    start = members.index(last) + 1 if last in members else 0
    for i in range(len(members)):
        candidate = members[(start + i) % len(members)]
        if candidate in free:
            return candidate
    return None


# --- finding tickets: the words and fields the ticket list is asked for ------------------------------------

_E = TypeVar("_E", bound=enum.Enum)
_IDENT = re.compile(r"[A-Za-z0-9_.:-]+")
MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 16  # more words than this narrow nothing further, and each costs the database a posting list
ASSIGNEE_ME, NOBODY = "me", "none"


@dataclass(frozen=True)
class TicketQuery:
    """What the ticket list is asked for: words to find (`q`) and fields every hit must match.

    `to_params` / `from_params` are the API's query parameters, which a saved view keeps as they are. Filters on
    fields other helpers add (tag, app id, SDK version) go here, next to `channel`, and in `tickets.search._where`.
    """

    q: str | None = None
    status: tuple[Status, ...] = ()
    open_only: bool = False
    priority: tuple[Priority, ...] = ()
    organization_id: str | None = None
    plan: str | None = None
    assignee: str | None = None  # a person's id, "me" or "none"
    team: str | None = None  # a team's id or name, or "none"
    channel: Channel | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    idle_days: int | None = None  # no change for at least this many days ("waiting on customer > 3 days")
    breaching_within_hours: float | None = None  # an SLA clock falls due within this many hours from now
    tag: str | None = None  # agents' tags: a customer's filter by tag finds nothing
    app_id: str | None = None  # RTC fields
    sdk_version: str | None = None

    @property
    def is_search(self) -> bool:
        return bool(self.q and self.q.strip())

    def to_params(self) -> dict[str, Any]:
        """The query as JSON-able API parameters (what is unset is left out)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value is None or value == () or value is False:
                continue
            if isinstance(value, tuple):
                out[name] = [str(v) for v in value]
            elif isinstance(value, datetime):
                out[name] = value.isoformat()
            elif isinstance(value, enum.Enum):
                out[name] = value.value
            else:
                out[name] = value
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TicketQuery:
        """Check and read API parameters (or a saved view's); InvalidInput names the first bad one."""
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"unknown filter {sorted(unknown)[0]!r}")
        q = params.get("q")
        if q is not None:
            q = _text(q, "q", MAX_QUERY_CHARS) or None
        return cls(
            q=q,
            status=_choices(params.get("status"), Status, "status"),
            open_only=params.get("open_only") in (True, "true", "1", "on"),
            priority=_choices(params.get("priority"), Priority, "priority"),
            organization_id=_ident(params.get("organization_id"), "organization_id"),
            plan=_ident(params.get("plan"), "plan"),
            assignee=_ident(params.get("assignee"), "assignee"),
            team=_text(params["team"], "team", 100) if params.get("team") else None,
            channel=_choices(params.get("channel"), Channel, "channel")[0] if params.get("channel") else None,
            created_from=_when(params.get("created_from"), "created_from"),
            created_to=_when(params.get("created_to"), "created_to"),
            updated_from=_when(params.get("updated_from"), "updated_from"),
            updated_to=_when(params.get("updated_to"), "updated_to"),
            idle_days=_days(params.get("idle_days")),
            breaching_within_hours=_hours(params.get("breaching_within_hours")),
            tag=clean_tag(params["tag"]) if params.get("tag") else None,
            app_id=_ident(params.get("app_id"), "app_id"),
            sdk_version=_text(params["sdk_version"], "sdk_version", MAX_SDK_VERSION)
            if params.get("sdk_version")
            else None,
        )


def _text(value: Any, name: str, most: int) -> str:
    if not isinstance(value, str) or len(value) > most:
        raise InvalidInput(f"{name} is text of at most {most} characters")
    return value.strip()


def _ident(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    value = _text(value, name, 64)
    if not _IDENT.fullmatch(value):
        raise InvalidInput(f"{name} is an id (letters, digits, _ . : -)")
    return value


def _choices(value: Any, kind: type[_E], name: str) -> tuple[_E, ...]:
    if value is None or value == "" or value == []:
        return ()
    values = value if isinstance(value, list | tuple) else str(value).split(",")
    if len(values) > len(kind.__members__):
        raise InvalidInput(f"{name}: at most {len(kind.__members__)} values")
    try:
        return tuple(dict.fromkeys(kind(str(v).strip()) for v in values))
    except ValueError as exc:
        allowed = ", ".join(str(m.value) for m in kind)
        raise InvalidInput(f"{name} must be among {allowed}") from exc


def _when(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(_text(value, name, 40))
        except ValueError as exc:
            raise InvalidInput(f"{name} is an ISO 8601 date or time") from exc
    if found.tzinfo is None:
        raise InvalidInput(f"{name} needs its UTC offset (e.g. 2026-12-01T00:00:00Z)")
    return found


def _days(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        days = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("idle_days is a whole number of days") from exc
    if not 1 <= days <= 3650:
        raise InvalidInput("idle_days must be between 1 and 3650")
    return days


def _hours(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("breaching_within_hours is a number of hours") from exc
    if not 0 < hours <= 720:  # also refuses NaN
        raise InvalidInput("breaching_within_hours must be more than 0 and at most 720")
    return hours


# Views every agent has without saving them: (message key of the name, the list's parameters).
PRESET_VIEWS: dict[str, tuple[str, dict[str, Any]]] = {
    "unassigned-p1": ("search.preset.unassigned_p1", {"assignee": NOBODY, "priority": "P1", "open_only": True}),
    "my-open": ("search.preset.my_open", {"assignee": ASSIGNEE_ME, "open_only": True}),
    "waiting-3d": ("search.preset.waiting_3d", {"status": "pending", "idle_days": 3}),
}
