"""Delivery state in the database: contact methods, notification rules, and messages sent by the engine.

`queue_message` stores one message (idempotent on its key) and arms a `notify.deliver` job; the job
moves it pending → sending → sent/failed, retrying with the engine's backoff, waiting when the
destination's rate limit is reached, and dropping it when its subject (an incident) no longer wants it.
A run that finds `sending` left by a crashed one repeats the hand-off only where a repeat is harmless;
e-mail, SMS and voice become `unknown` instead (docs/DELIVERY.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, cast

from prometheus_client import Counter
from sqlalchemy import Select, Table, delete, func, select, text, update
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.core.metrics import REGISTRY
from zhiban.core.settings import Settings, SettingsSource
from zhiban.engine import JobContext, enqueue, enqueue_many, urgent_kind
from zhiban.engine.model import bounded_error
from zhiban.notify.channels.base import Channel
from zhiban.notify.model import (
    MAX_RULES,
    DeliveryResult,
    Link,
    Message,
    MessageOutcome,
    NotificationRule,
    Outgoing,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from zhiban.notify.registry import (
    ChannelDeps,
    channel_for,
    channel_type,
    check_new_destination,
    parse_destination,
    rate_limits_for,
)
from zhiban.notify.store import ContactMethodRow, NotificationRow, NotificationRuleRow
from zhiban.store.db import insert_or_skip, new_id

log = logging.getLogger("zhiban.notify")

DELIVER_JOB = urgent_kind("notify.deliver")  # a person waits: queuing one wakes the workers
DELIVERY_ATTEMPTS = 6
MAX_CONTACT_METHODS = 20
URGENCIES = ("any", "high", "low")
# `unknown`: a hand-off cut by a crash on a channel that cannot drop repeats (docs/DELIVERY.md).
FINAL_STATES = frozenset({"sent", "failed", "cancelled", "unknown"})
_QUEUE_CHUNK = 500  # messages per INSERT … RETURNING of queue_messages

HANDOFF_UNKNOWN = Counter(
    "zhiban_notify_handoff_unknown_total",
    "Messages whose hand-off was cut short by a crash and not repeated (e-mail, SMS, voice); the auditor reports them",
    ["channel"],
    registry=REGISTRY,
)
HANDOFF_REPEATED = Counter(
    "zhiban_notify_handoff_repeated_total",
    "Hand-offs cut short by a crash and made again under the same idempotency key (webhooks, IM robots)",
    ["channel"],
    registry=REGISTRY,
)

# --- contact methods and rules ----------------------------------------------------------------


def add_contact_method(
    session: Session, clock: Clock, *, person_id: str, channel: str, config: dict[str, Any], label: str = ""
) -> ContactMethodRow:
    """Store a validated destination of a person (e.g. their Feishu bot, their phone for SMS)."""
    if len(label) > 200:
        raise InvalidInput("label must be at most 200 characters")
    if not channel_type(channel).contact:
        raise InvalidInput(f"{channel} is not a channel for a person's contact methods")
    check_new_destination(channel, config)  # refuses a bad config or an internal URL before anything is stored
    count = session.scalar(select(func.count()).where(ContactMethodRow.person_id == person_id)) or 0
    if count >= MAX_CONTACT_METHODS:
        raise InvalidInput(f"a person has at most {MAX_CONTACT_METHODS} contact methods")
    row = ContactMethodRow(
        person_id=person_id, channel=channel, config=dict(config), label=label, created_at=clock.now()
    )
    session.add(row)
    session.flush()
    session.info.pop(_RULES_MEMO, None)  # paging_rules must see the change
    return row


def add_notification_rule(
    session: Session, clock: Clock, *, person_id: str, contact_method_id: str, delay_minutes: int, urgency: str = "any"
) -> NotificationRuleRow:
    """Contact the person by this method `delay_minutes` after being paged (until they acknowledge)."""
    method = session.get(ContactMethodRow, contact_method_id)
    if method is None or method.person_id != person_id:
        raise NotFound(f"person {person_id} has no contact method {contact_method_id}")
    if urgency not in URGENCIES:
        raise InvalidInput(f"urgency must be one of {URGENCIES}")
    NotificationRule(method.channel, method.id, delay_minutes)  # validates the delay
    count = session.scalar(select(func.count()).where(NotificationRuleRow.person_id == person_id)) or 0
    if count >= MAX_RULES:
        raise InvalidInput(f"a person has at most {MAX_RULES} notification rules")
    row = NotificationRuleRow(
        person_id=person_id,
        contact_method_id=contact_method_id,
        delay_minutes=delay_minutes,
        urgency=urgency,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    session.info.pop(_RULES_MEMO, None)  # paging_rules must see the change
    return row


def remove_contact_method(session: Session, *, person_id: str, contact_method_id: str) -> None:
    """Delete one of a person's contact methods and the rules that use it (pages already queued still go)."""
    method = session.get(ContactMethodRow, contact_method_id)
    if method is None or method.person_id != person_id:
        raise NotFound(f"person {person_id} has no contact method {contact_method_id}")
    session.execute(
        delete(NotificationRuleRow)
        .where(NotificationRuleRow.contact_method_id == method.id)
        .execution_options(synchronize_session="fetch")
    )
    session.delete(method)
    session.flush()
    session.info.pop(_RULES_MEMO, None)  # paging_rules must see the change


def remove_notification_rule(session: Session, *, person_id: str, rule_id: str) -> None:
    """Delete one of a person's notification rules."""
    rule = session.get(NotificationRuleRow, rule_id)
    if rule is None or rule.person_id != person_id:
        raise NotFound(f"person {person_id} has no notification rule {rule_id}")
    session.delete(rule)
    session.flush()
    session.info.pop(_RULES_MEMO, None)  # paging_rules must see the change


def contact_methods_of(session: Session, person_id: str) -> list[ContactMethodRow]:
    """A person's contact methods, oldest first."""
    query = select(ContactMethodRow).where(ContactMethodRow.person_id == person_id)
    return list(session.scalars(query.order_by(ContactMethodRow.created_at, ContactMethodRow.id)))


def rules_of(session: Session, person_id: str) -> list[NotificationRuleRow]:
    """A person's notification rules, soonest first."""
    query = select(NotificationRuleRow).where(NotificationRuleRow.person_id == person_id)
    return list(session.scalars(query.order_by(NotificationRuleRow.delay_minutes, NotificationRuleRow.id)))


_RULES_MEMO = "zhiban.notify.paging_rules"  # session.info: (transaction, {(person, urgency): rules})
PagingRules = list[tuple[NotificationRule, ContactMethodRow]]


def _rules_memo(session: Session) -> dict[tuple[str, str], PagingRules]:
    transaction = session.get_transaction()
    kept = session.info.get(_RULES_MEMO)
    if kept is None or kept[0] is not transaction:
        kept = session.info[_RULES_MEMO] = (transaction, {})
    memo: dict[tuple[str, str], PagingRules] = kept[1]
    return memo


def paging_rules(session: Session, person_id: str, urgency: str) -> PagingRules:
    """The rules that apply to a page of this urgency, each with its contact method.

    Remembered for the rest of the transaction: an alert storm opens many incidents in one transaction,
    and they all page the same few people on call.
    """
    return paging_rules_many(session, [person_id], urgency)[person_id]


def paging_rules_many(session: Session, person_ids: Iterable[str], urgency: str) -> dict[str, PagingRules]:
    """`paging_rules` of many people (by person id), with two queries for those not yet remembered."""
    memo = _rules_memo(session)
    wanted = list(dict.fromkeys(person_ids))
    missing = [pid for pid in wanted if (pid, urgency) not in memo]
    for start in range(0, len(missing), _QUEUE_CHUNK):
        chunk = missing[start : start + _QUEUE_CHUNK]
        methods = {
            m.id: m
            for m in session.scalars(
                select(ContactMethodRow)
                .where(ContactMethodRow.person_id.in_(chunk))
                .order_by(ContactMethodRow.created_at, ContactMethodRow.id)
            )
        }
        found: dict[str, PagingRules] = {pid: [] for pid in chunk}
        rules = select(NotificationRuleRow).where(NotificationRuleRow.person_id.in_(chunk))
        for rule in session.scalars(rules.order_by(NotificationRuleRow.delay_minutes, NotificationRuleRow.id)):
            method = methods.get(rule.contact_method_id)
            if method is None or method.person_id != rule.person_id or rule.urgency not in ("any", urgency):
                continue
            found[rule.person_id].append((NotificationRule(method.channel, method.id, rule.delay_minutes), method))
        for pid, rules_of_person in found.items():
            memo[(pid, urgency)] = rules_of_person
    return {pid: memo[(pid, urgency)] for pid in wanted}


# --- messages ---------------------------------------------------------------------------------


def message_to_json(message: Message) -> dict[str, Any]:
    """A Message as stored JSON."""
    data = asdict(message)
    data["links"] = [[link.rel, link.url, link.label] for link in message.links]
    data["references"] = list(message.references)
    data["metadata"] = dict(message.metadata)
    return data


def message_from_json(data: dict[str, Any]) -> Message:
    """The Message stored by message_to_json."""
    fields = dict(data)
    fields["links"] = tuple(Link(*link) for link in fields.get("links", ()))
    fields["references"] = tuple(fields.get("references", ()))
    return Message(**fields)


def queue_message(
    session: Session,
    clock: Clock,
    *,
    message: Message,
    subject_kind: str,
    subject_id: str,
    channel: str,
    config: dict[str, Any],
    due_at: datetime,
    person_id: str | None = None,
    contact_method_id: str | None = None,
    destination_name: str = "",
    ticket_id: int | None = None,
) -> tuple[str, bool]:
    """Store one message and arm its delivery job; (id, False) when its idempotency key was queued before.

    One INSERT … ON CONFLICT DO NOTHING: a page storm queues many messages inside alert transactions, and
    a look-up, a savepoint and an insert per message were most of their round trips. A concurrent step run
    that queued the same key first wins; ours is then a repeat.
    """
    outgoing = Outgoing(
        message, subject_kind, subject_id, channel, config, due_at, person_id, contact_method_id, destination_name,
        ticket_id,
    )  # fmt: skip
    return queue_messages(session, clock, [outgoing])[0]


def queue_messages(session: Session, clock: Clock, outgoing: Sequence[Outgoing]) -> list[tuple[str, bool]]:
    """Store many messages and arm their delivery jobs, as `queue_message` for each, in a few statements.

    Returns (id, new) per message in order: new is False when its idempotency key was queued before (by an
    earlier run or a concurrent one, which wins) or earlier in `outgoing`. One multi-row INSERT … ON CONFLICT
    DO NOTHING for the messages and one for their jobs: a storm's pages cost rows, not statements.
    """
    if not outgoing:
        return []
    now = clock.now()
    destinations: dict[tuple[str, str, str], Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    for item in outgoing:
        key = item.message.idempotency_key
        if key in rows:
            continue  # the same page twice in one call: queued once
        # Every message's destination is checked before anything is stored; a storm repeats a few of them.
        config_key = (item.channel, json.dumps(dict(item.config), sort_keys=True, default=str), item.destination_name)
        destination = destinations.get(config_key)
        if destination is None:
            destination = destinations[config_key] = parse_destination(item.channel, item.config, item.destination_name)
        rows[key] = {
            "id": new_id(),
            "idempotency_key": key,
            "subject_kind": item.subject_kind,
            "subject_id": item.subject_id,
            "kind": item.message.event,
            "ticket_id": item.ticket_id,
            "person_id": item.person_id,
            "contact_method_id": item.contact_method_id,
            "channel": item.channel,
            "destination": {"config": dict(item.config), "name": item.destination_name},
            "rate_key": (
                destination.rate_key
                if item.destination_name
                else f"{item.channel}:{_config_identity(dict(item.config))}"
            ),
            "message": message_to_json(item.message),
            "state": "pending",
            "due_at": item.due_at,
            "attempts": 0,
            "job_seq": 0,
            "created_at": now,
        }
    table = cast(Table, NotificationRow.__table__)
    statement = insert_or_skip(session, table, ["idempotency_key"]).returning(table.c.idempotency_key, table.c.id)
    inserted: dict[str, str] = {}
    values = list(rows.values())
    for start in range(0, len(values), _QUEUE_CHUNK):
        # A list of parameter sets: SQLAlchemy sends them as multi-row INSERTs (insertmanyvalues), RETURNING
        # the rows that went in; a skipped key returns nothing.
        found = session.connection().execute(statement, values[start : start + _QUEUE_CHUNK])
        inserted.update((str(key), str(row_id)) for key, row_id in found)
    missing = [key for key in rows if key not in inserted]
    existing: dict[str, str] = {}
    for start in range(0, len(missing), _QUEUE_CHUNK):
        chunk = missing[start : start + _QUEUE_CHUNK]
        query = select(NotificationRow.idempotency_key, NotificationRow.id).where(
            NotificationRow.idempotency_key.in_(chunk)
        )
        existing.update((str(key), str(row_id)) for key, row_id in session.execute(query))
    if len(existing) < len(missing):  # pragma: no cover - a conflicting row was deleted meanwhile
        raise Conflict("a message was being changed concurrently; try again")
    enqueue_many(
        session,
        [
            (DELIVER_JOB, {"id": row_id, "seq": 0}, rows[key]["due_at"], f"notify:{row_id}:0")
            for key, row_id in inserted.items()
        ],
        max_attempts=DELIVERY_ATTEMPTS,
    )
    answers: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for item in outgoing:
        key = item.message.idempotency_key
        if key in inserted:
            answers.append((inserted[key], key not in seen))
        else:
            answers.append((existing[key], False))
        seen.add(key)
    return answers


def _config_identity(config: dict[str, Any]) -> str:
    # The rate limit belongs to the robot or number, so key it by the destination address itself.
    for name in ("webhook_url", "url", "to"):
        value = config.get(name)
        if isinstance(value, str):
            return value[:250]
        if isinstance(value, list) and value:
            return str(value[0])[:250]
    return "default"


def cancel_pending(session: Session, clock: Clock, subject_kind: str, subject_id: str, reason: str) -> int:
    """Cancel the messages about a subject not yet handed to a channel; returns how many."""
    result = session.execute(
        update(NotificationRow)
        .where(
            NotificationRow.subject_kind == subject_kind,
            NotificationRow.subject_id == subject_id,
            NotificationRow.state == "pending",
        )
        .values(state="cancelled", last_error=reason[:500], finished_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def notifications_of(session: Session, subject_kind: str, subject_id: str, limit: int = 500) -> list[NotificationRow]:
    """The messages about a subject, in the order they were queued."""
    query = select(NotificationRow).where(
        NotificationRow.subject_kind == subject_kind, NotificationRow.subject_id == subject_id
    )
    return list(session.scalars(query.order_by(NotificationRow.created_at, NotificationRow.id).limit(limit)))


def get_notification(session: Session, notification_id: str) -> NotificationRow:
    row = session.get(NotificationRow, notification_id)
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    return row


# --- subjects: who may stop a message, who hears how it ended -------------------------------

Guard = Callable[[Session, str], bool]
ResultListener = Callable[[Session, Clock, MessageOutcome], None]
_guards: dict[str, Guard] = {}
_result_listeners: list[ResultListener] = []


def register_guard(subject_kind: str, guard: Guard) -> None:
    """`guard(session, subject_id)` False means the message is no longer wanted (e.g. incident acknowledged)."""
    _guards[subject_kind] = guard


def on_result(listener: ResultListener) -> ResultListener:
    """Call `listener(session, clock, outcome)` in the transaction that records how an attempt ended.

    The message is sent, failed, cancelled or unknown, or still pending after a retryable failure (its
    last_error says why).
    """
    if listener not in _result_listeners:
        _result_listeners.append(listener)
    return listener


def outcome_of(row: NotificationRow) -> MessageOutcome:
    """The value other features see of a queued message (never its row)."""
    metadata = (row.message or {}).get("metadata") or {}
    return MessageOutcome(
        id=row.id,
        subject_kind=row.subject_kind,
        subject_id=row.subject_id,
        channel=row.channel,
        person_id=row.person_id,
        state=row.state,
        last_error=row.last_error,
        provider_id=row.provider_id,
        handed_at=row.handed_at,
        sent_at=row.sent_at,
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def _announce(session: Session, clock: Clock, row: NotificationRow) -> None:
    if not _result_listeners:
        return
    outcome = outcome_of(row)
    for listener in list(_result_listeners):
        listener(session, clock, outcome)


def delivery_by_provider_id(session: Session, channel: str, provider_id: str) -> MessageOutcome | None:
    """The message a provider knows by this id (Twilio's CallSid), sent through this channel; None if none."""
    query = (
        select(NotificationRow)
        .where(NotificationRow.provider_id == provider_id, NotificationRow.channel == channel)
        .order_by(NotificationRow.created_at)
        .limit(1)
    )
    row = session.scalars(query).first()
    return outcome_of(row) if row is not None else None


# A provider's final word on a message it accepted: what the desk records.
PROVIDER_FAILED = "failed"
PROVIDER_DELIVERED = "sent"


def provider_status(
    session: Session, clock: Clock, channel: str, provider_id: str, *, state: str, detail: str
) -> MessageOutcome | None:
    """Record what the provider later said of a message it accepted (a call answered, busy, not answered).

    `state` is PROVIDER_DELIVERED or PROVIDER_FAILED. Only a message the desk counts as sent, or whose hand-off
    a crash left unknown, changes: a cancelled or already failed one keeps its state. The feature that sent it
    hears the outcome (`on_result`), as it does after a send.
    """
    if state not in (PROVIDER_DELIVERED, PROVIDER_FAILED):
        raise ValueError(f"unknown provider state {state!r}")
    query = (
        select(NotificationRow)
        .where(NotificationRow.provider_id == provider_id, NotificationRow.channel == channel)
        .with_for_update()
        .limit(1)
    )
    row = session.scalars(query).first()
    if row is None:
        return None
    if row.state in ("sent", "unknown"):
        error = None if state == PROVIDER_DELIVERED else bounded_error(f"{channel}: {detail}")
        if row.state != state or row.last_error != error:
            if state == PROVIDER_DELIVERED and row.sent_at is None:
                row.sent_at = clock.now()
            _finish_row(session, clock, row, state, error)
    return outcome_of(row)


def unknown_handoffs(
    session: Session, subject_kind: str, subject_ids: Iterable[str] | Select[Any], *, limit: int = 500
) -> list[MessageOutcome]:
    """Messages of these subjects whose hand-off a crash cut short (state `unknown`), oldest hand-off first.

    `subject_ids` may be a query of ids, so that a feature names its subjects without handing over a list.
    """
    ids = subject_ids if isinstance(subject_ids, Select) else sorted(set(subject_ids))
    query = (
        select(NotificationRow)
        .where(
            NotificationRow.subject_kind == subject_kind,
            NotificationRow.state == "unknown",
            NotificationRow.subject_id.in_(ids),
        )
        .order_by(NotificationRow.handed_at, NotificationRow.id)
        .limit(limit)
    )
    return [outcome_of(row) for row in session.scalars(query)]


# --- channels of this process -------------------------------------------------------------------

# The SMTP relay, read at each send from the settings notify.hooks hands over.
current_settings: SettingsSource[Settings] = SettingsSource("zhiban.notify.hooks")
_deps_override: ChannelDeps | None = None
_channels: dict[tuple[str, int, str, str], Channel] = {}
_channels_lock = threading.Lock()


def set_channel_deps(deps: ChannelDeps | None) -> None:
    """Use these channel dependencies in this process (tests give a FrozenClock; None resets)."""
    global _deps_override
    with _channels_lock:
        _deps_override = deps
        _channels.clear()


def _default_deps(clock: Clock, smtp_url: str, twilio_url: str, base_url: str = "") -> ChannelDeps:
    from zhiban.notify.channels.phone import TwilioProvider

    provider = TwilioProvider.from_url(twilio_url, callback_base=base_url) if twilio_url else None
    return ChannelDeps(clock=clock, smtp_url=smtp_url, sms_provider=provider, voice_provider=provider)


def _channel(name: str, clock: Clock) -> Channel:
    settings = current_settings() if _deps_override is None else None
    smtp_url, twilio_url = (settings.smtp_url, settings.twilio_url) if settings else ("", "")
    base_url = settings.base_url if settings else ""
    with _channels_lock:
        # The relays are part of the key: a changed ZHIBAN_SMTP_URL must not reuse a session to the old relay.
        key = (name, id(clock), smtp_url, twilio_url + " " + base_url)
        found = _channels.get(key)
        if found is None:
            deps = _deps_override or _default_deps(clock, smtp_url, twilio_url, base_url)
            found = _channels[key] = channel_for(name, deps)
        return found


# --- delivery -----------------------------------------------------------------------------------


def _lock_rate_key(session: Session, rate_key: str) -> None:
    # Serialize sends on one destination across workers so that the count below is exact.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": rate_key})


def rate_wait(session: Session, rate_key: str, now: datetime) -> timedelta | None:
    """How long a send to this destination must wait for its channel's limits, from what was handed out."""
    rates = rate_limits_for(rate_key)
    if not rates:
        return None
    _lock_rate_key(session, rate_key)
    wait = timedelta(0)
    for rate in rates:
        recent = list(
            session.scalars(
                select(NotificationRow.handed_at)
                .where(NotificationRow.rate_key == rate_key, NotificationRow.handed_at > now - rate.per)
                .order_by(NotificationRow.handed_at.desc())
                .limit(rate.count)
            )
        )
        if len(recent) >= rate.count:
            oldest = min(moment for moment in recent if moment is not None)
            wait = max(wait, oldest + rate.per - now)
    return wait if wait > timedelta(0) else None


def _rearm(session: Session, row: NotificationRow, due_at: datetime) -> None:
    row.job_seq += 1
    row.due_at = due_at
    row.state = "pending"
    enqueue(
        session,
        DELIVER_JOB,
        {"id": row.id, "seq": row.job_seq},
        due_at=due_at,
        dedup_key=f"notify:{row.id}:{row.job_seq}",
        max_attempts=DELIVERY_ATTEMPTS,
    )


def _finish_row(session: Session, clock: Clock, row: NotificationRow, state: str, error: str | None) -> None:
    row.state = state
    row.last_error = error
    row.finished_at = clock.now()
    _announce(session, clock, row)


def _mark_unknown(
    session: Session, clock: Clock, row: NotificationRow, why: str = "the worker stopped or lost its lease"
) -> None:
    handed = row.handed_at.isoformat() if row.handed_at else "?"
    reason = (
        f"hand-off {row.handoff_id} at {handed} was cut short ({why}): "
        f"it may have reached the receiver; {row.channel} cannot drop a repeat, so it is not sent again"
    )
    _finish_row(session, clock, row, "unknown", bounded_error(reason))


def deliver(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `notify.deliver` job: send one stored message once its time, its limits and its subject allow."""
    notification_id = str(payload.get("id", ""))
    seq = int(payload.get("seq", 0))
    clock = ctx.clock
    unknown: str | None = None
    repeated: str | None = None
    with ctx.session_factory() as session, session.begin():
        row = session.scalar(select(NotificationRow).where(NotificationRow.id == notification_id).with_for_update())
        if row is None or row.state in FINAL_STATES or row.job_seq != seq:
            ctx.finish(session)
            return
        # `sending` here was left by an earlier run that never recorded the answer (killed, or hung past its
        # lease): the receiver may have the message. Only a channel where a repeat is harmless repeats it.
        if row.state == "sending" and not channel_type(row.channel).repeat_safe:
            _mark_unknown(session, clock, row)
            ctx.finish(session)
            unknown = row.channel
        else:
            repeated = row.channel if row.state == "sending" else None
            guard = _guards.get(row.subject_kind)
            if guard is not None and not guard(session, row.subject_id):
                _finish_row(session, clock, row, "cancelled", "no longer wanted")
                ctx.finish(session)
                return
            now = clock.now()
            wait = rate_wait(session, row.rate_key, now)
            if wait is not None:
                _rearm(session, row, now + wait)
                ctx.finish(session)
                return
            # `sending` and this hand-off's id are committed before the channel is called.
            row.state = "sending"
            row.attempts += 1
            row.handed_at = now
            row.handoff_id = handoff_id = new_id()
            message = message_from_json(row.message)
            destination = parse_destination(row.channel, row.destination["config"], row.destination.get("name", ""))
            channel_name = row.channel
    if unknown is not None:
        HANDOFF_UNKNOWN.labels(unknown).inc()
        log.warning("notification %s: hand-off cut short; outcome unknown, not repeated (%s)", notification_id, unknown)
        return
    if repeated is not None:
        HANDOFF_REPEATED.labels(repeated).inc()
    result: DeliveryResult | None = None
    error: Exception | None = None
    try:
        result = _channel(channel_name, clock).send(message, destination)
    except (RetryableDeliveryError, PermanentDeliveryError) as exc:
        error = exc
    with ctx.session_factory() as session, session.begin():
        row = session.scalar(select(NotificationRow).where(NotificationRow.id == notification_id).with_for_update())
        if row is None or row.handoff_id != handoff_id:
            return  # another run has taken the message over; its outcome is its own
        if row.state == "unknown":
            # This run hung past its lease and a later run marked the hand-off unknown: the answer settles
            # it. That run finished the job, so this one only records what it learned.
            if result is not None:
                row.sent_at = clock.now()
                row.provider_id = result.provider_id
                _finish_row(session, clock, row, "sent", None)
            elif isinstance(error, PermanentDeliveryError):
                _finish_row(session, clock, row, "failed", bounded_error(error.summary))
            return
        if row.state in FINAL_STATES:
            ctx.finish(session)
            return
        if result is not None:
            row.sent_at = clock.now()
            row.provider_id = result.provider_id
            _finish_row(session, clock, row, "sent", None)
            ctx.finish(session)
            return
        assert isinstance(error, RetryableDeliveryError | PermanentDeliveryError)
        # Users see only the short class (timed out, HTTP 500, blocked destination…); the details go to the log.
        log.warning("notification %s via %s not sent: %s", notification_id, channel_name, bounded_error(str(error)))
        reason = bounded_error(error.summary)
        if (
            isinstance(error, RetryableDeliveryError)
            and error.maybe_delivered
            and not channel_type(row.channel).repeat_safe
        ):
            _mark_unknown(session, clock, row, f"{reason} after the request went out")
            ctx.finish(session)
            unknown = row.channel
        elif isinstance(error, RetryableDeliveryError) and ctx.attempt < ctx.max_attempts:
            row.last_error = reason
            if error.retry_after is not None:
                _rearm(session, row, clock.now() + error.retry_after)
                _announce(session, clock, row)  # still pending: listeners may show why it waits
                ctx.finish(session)
                return
            row.state = "pending"
            _announce(session, clock, row)
        else:
            _finish_row(session, clock, row, "failed", reason)
            ctx.finish(session)
            return
    if unknown is not None:
        HANDOFF_UNKNOWN.labels(unknown).inc()
        log.warning("notification %s: no answer to the hand-off; outcome unknown, not repeated", notification_id)
        return
    # Let the engine retry with its backoff; the row says pending with the last error meanwhile. The job row
    # (shown to agents) gets the short class too.
    assert isinstance(error, RetryableDeliveryError)
    raise RetryableDeliveryError(error.channel, error.summary, status=error.status) from None
