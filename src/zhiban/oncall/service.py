"""Use cases of on-call schedules: edit them, ask who is on call, feeds, gap notices, the demo.

`load_schedule` keeps one compiled `Schedule` value per schedule in this process, keyed by the
row's version; the value carries the lookup cache of `schedule.who_is_on_call`, so a page or an
escalation asking "who now?" costs one small version query while nothing changes.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal, Role
from zhiban.oncall import store
from zhiban.oncall.model import (
    MAX_LAYERS,
    MAX_OVERRIDES,
    DailyWindow,
    Layer,
    Override,
    Restriction,
    Schedule,
    Shift,
    TurnUnit,
    WeeklyWindow,
    require_aware,
    zone_of,
)
from zhiban.oncall.schedule import gaps, person_shifts, shifts, who_is_on_call
from zhiban.oncall.store import GapNoticeRow, LayerRow, OverrideRow, PersonFeedRow, ScheduleRow

CACHE_SIZE = 256
GAP_HORIZON = timedelta(days=14)
GAP_CHECK_JOB = "oncall.gap_check"
MAX_NEXT_SHIFTS = 50
# How far back a shift in force may have started, so `next_shifts` reports its real start.
LOOKBACK = timedelta(days=31)
NAME_MAX = 200

# Per process, and safe with several (web processes, workers): an entry is used only while its version matches the
# schedule's stored version, read at each use.
_cache: OrderedDict[str, tuple[int, Schedule]] = OrderedDict()
_cache_lock = threading.Lock()


# --- restrictions as JSON ---------------------------------------------------------------------


def _time_of(value: Any, what: str) -> time:
    if not isinstance(value, str) or len(value) > 8:
        raise InvalidInput(f"{what} must be a time of day like '09:00'")
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a time of day like '09:00', not {value!r}") from exc


def _weekday(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 6:
        raise InvalidInput(f"{what} must be a weekday 0 (Monday) to 6 (Sunday)")
    return value


def restriction_from_json(data: Any) -> Restriction:
    """A restriction window from its JSON form ({"kind": "daily"|"weekly", ...})."""
    if not isinstance(data, dict):
        raise InvalidInput("a restriction must be an object with a 'kind'")
    kind = data.get("kind")
    if kind == "daily":
        days = data.get("weekdays", list(range(7)))
        if not isinstance(days, list) or len(days) > 7:
            raise InvalidInput("weekdays must be a list of up to seven weekdays")
        return DailyWindow(
            _time_of(data.get("start"), "start"),
            _time_of(data.get("end"), "end"),
            frozenset(_weekday(d, "weekday") for d in days),
        )
    if kind == "weekly":
        return WeeklyWindow(
            _weekday(data.get("start_weekday"), "start_weekday"),
            _time_of(data.get("start"), "start"),
            _weekday(data.get("end_weekday"), "end_weekday"),
            _time_of(data.get("end"), "end"),
        )
    raise InvalidInput("a restriction's kind must be 'daily' or 'weekly'")


def restriction_to_json(window: Restriction) -> dict[str, Any]:
    """The JSON form of a restriction window."""
    if isinstance(window, DailyWindow):
        return {
            "kind": "daily",
            "start": window.start.isoformat("minutes"),
            "end": window.end.isoformat("minutes"),
            "weekdays": sorted(window.weekdays),
        }
    return {
        "kind": "weekly",
        "start_weekday": window.start_weekday,
        "start": window.start.isoformat("minutes"),
        "end_weekday": window.end_weekday,
        "end": window.end.isoformat("minutes"),
    }


# --- loading ----------------------------------------------------------------------------------


def _layer_of(row: LayerRow) -> Layer:
    return Layer(
        name=row.name,
        participants=tuple(row.participants),
        rotation_start=row.rotation_start,
        turn_length=row.turn_length,
        turn_unit=TurnUnit(row.turn_unit),
        restrictions=tuple(restriction_from_json(r) for r in row.restrictions),
        zone=row.zone,
        end=row.end,
    )


def _build(session: Session, row: ScheduleRow) -> Schedule:
    # Past the cap, the overrides that end last are the ones that still matter.
    recent = session.scalars(
        select(OverrideRow)
        .where(OverrideRow.schedule_id == row.id)
        .order_by(OverrideRow.end.desc(), OverrideRow.id.desc())
        .limit(MAX_OVERRIDES)
    )
    overrides = sorted(recent, key=lambda o: o.id)
    return Schedule(
        id=row.id,
        zone=row.zone,
        name=row.name,
        layers=tuple(_layer_of(layer) for layer in store.layers_of(session, row.id)),
        overrides=tuple(Override(o.person_id, o.start, o.end) for o in overrides),
    )


def load_schedule(session: Session, schedule_id: str) -> Schedule:
    """The schedule as a model value, from this process's cache while its version is unchanged."""
    version = store.schedule_version(session, schedule_id)
    if version is None:
        raise NotFound(f"no on-call schedule {schedule_id!r}")
    with _cache_lock:
        hit = _cache.get(schedule_id)
        if hit is not None and hit[0] == version:
            _cache.move_to_end(schedule_id)
            return hit[1]
    row = session.get(ScheduleRow, schedule_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no on-call schedule {schedule_id!r}")
    schedule = _build(session, row)
    with _cache_lock:
        _cache[schedule_id] = (row.version, schedule)
        _cache.move_to_end(schedule_id)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return schedule


def on_call_now(session: Session, schedule_id: str, at: datetime) -> list[str]:
    """Person ids on call in the schedule at `at` (one, or none when nobody covers it)."""
    return who_is_on_call(load_schedule(session, schedule_id), require_aware(at, "at"))


def next_shifts(session: Session, schedule_id: str, at: datetime, n: int = 5) -> list[Shift]:
    """The shift in force at `at` (if any) and the ones after it, up to `n`, within a year."""
    if not 1 <= n <= MAX_NEXT_SHIFTS:
        raise InvalidInput(f"n must be from 1 to {MAX_NEXT_SHIFTS}")
    moment = require_aware(at, "at")
    schedule = load_schedule(session, schedule_id)
    span = timedelta(days=14)
    while True:
        found = [s for s in shifts(schedule, moment - LOOKBACK, moment + span) if s.end > moment]
        # The last one may be cut at the window's edge; only trust it when the window reaches beyond it.
        if len(found) > n or span >= timedelta(days=366):
            return found[:n]
        span *= 3


def now_and_next(session: Session, schedule_id: str, at: datetime) -> tuple[Shift | None, list[Shift]]:
    """The shift in force at `at` (None in a gap) and up to five shifts after it."""
    coming = next_shifts(session, schedule_id, at, 6)
    moment = require_aware(at, "at")
    if coming and coming[0].start <= moment:
        return coming[0], coming[1:]
    return None, coming[:5]


def shifts_between(session: Session, schedule_id: str, start: datetime, end: datetime) -> list[Shift]:
    """The schedule's final shifts in [start, end)."""
    return shifts(load_schedule(session, schedule_id), start, end)


def schedule_named(session: Session, ref: str) -> tuple[str, str] | None:
    """A schedule's (id, name), found by its id or its name."""
    row = session.get(ScheduleRow, ref) or store.schedule_by_name(session, ref)
    return (row.id, row.name) if row is not None else None


def schedule_id_by_name(session: Session, name: str) -> str:
    """The id of the schedule called `name`."""
    row = store.schedule_by_name(session, name)
    if row is None:
        raise NotFound(f"no on-call schedule named {name!r}")
    return row.id


# --- reading, for staff -----------------------------------------------------------------------


def list_schedules(session: Session, principal: Principal) -> list[ScheduleRow]:
    """Every schedule, by name (staff only)."""
    principal.require_staff()
    return store.all_schedules(session)


def get_schedule(session: Session, principal: Principal, schedule_id: str) -> ScheduleRow:
    """One schedule row (staff only)."""
    principal.require_staff()
    row = session.get(ScheduleRow, schedule_id)
    if row is None:
        raise NotFound(f"no on-call schedule {schedule_id!r}")
    return row


def layers(session: Session, principal: Principal, schedule_id: str) -> list[LayerRow]:
    """A schedule's layers, bottom first (staff only)."""
    get_schedule(session, principal, schedule_id)
    return store.layers_of(session, schedule_id)


def upcoming_overrides(session: Session, principal: Principal, schedule_id: str, now: datetime) -> list[OverrideRow]:
    """Overrides not yet over (staff only)."""
    get_schedule(session, principal, schedule_id)
    return store.overrides_of(session, schedule_id, ending_after=now)[-200:]


def names_of(session: Session, person_ids: Sequence[str] | set[str]) -> dict[str, str]:
    """Display names of people by id."""
    return identity.names_of(session, person_ids)


def staff_people(session: Session) -> list[Person]:
    """Active agents and admins: who can be on call."""
    return identity.staff(session)


def my_shifts(session: Session, principal: Principal, start: datetime, end: datetime) -> list[tuple[Schedule, Shift]]:
    """The caller's own final shifts across every schedule in [start, end), clipped to it."""
    principal.require_staff()
    schedules = [load_schedule(session, row.id) for row in store.all_schedules(session)]
    return person_shifts(schedules, principal.person_id, start, end)


# --- editing ----------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or "\x00" in name:
        raise InvalidInput(f"a schedule name is 1 to {NAME_MAX} characters")
    return name


def _require_on_call_people(session: Session, person_ids: Sequence[str]) -> None:
    """Only active staff can be on call: a customer or an unknown id is refused."""
    wanted = set(person_ids)
    found = {p.id for p in identity.staff(session, ids=wanted)}
    missing = sorted(wanted - found)
    if missing:
        raise InvalidInput(f"not active agents or admins: {', '.join(missing[:10])}")


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _editable(session: Session, principal: Principal, schedule_id: str) -> ScheduleRow:
    # Changing the rotations is a manager's job; every agent may still take or give away shifts.
    principal.require_admin()
    row = session.get(ScheduleRow, schedule_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no on-call schedule {schedule_id!r}")
    return row


def create_schedule(
    session: Session, clock: Clock, principal: Principal, *, name: str, zone: str, owner_id: str | None = None
) -> ScheduleRow:
    """A new, empty schedule (admins); its owner hears about gaps ahead of time."""
    principal.require_admin()
    zone_of(zone)
    if owner_id is not None:
        _require_on_call_people(session, [owner_id])
    name = _check_name(name)
    if store.schedule_by_name(session, name) is not None:
        raise Conflict(f"a schedule named {name!r} exists")
    now = clock.now()
    row = ScheduleRow(
        name=name,
        zone=zone,
        owner_id=owner_id,
        ical_token=_new_token(),
        version=1,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise Conflict(f"a schedule named {name!r} exists") from exc
    ensure_gap_check(session, clock)
    return row


def update_schedule(
    session: Session,
    clock: Clock,
    principal: Principal,
    schedule_id: str,
    *,
    name: str | None = None,
    zone: str | None = None,
    owner_id: str | None = None,
    clear_owner: bool = False,
) -> ScheduleRow:
    """Rename a schedule, change its zone or owner (admins)."""
    row = _editable(session, principal, schedule_id)
    if name is not None:
        name = _check_name(name)
        other = store.schedule_by_name(session, name)
        if other is not None and other.id != row.id:
            raise Conflict(f"a schedule named {name!r} exists")
        row.name = name
    if zone is not None:
        zone_of(zone)
        row.zone = zone
    if clear_owner:
        row.owner_id = None
    elif owner_id is not None:
        _require_on_call_people(session, [owner_id])
        row.owner_id = owner_id
    session.flush()
    store.bump_version(session, row.id, clock.now())
    return row


# Who still pages a schedule (e.g. escalation policies): features that do subscribe here, so on-call need
# not know them. Each answers the names of what would break if the schedule went.
ScheduleUsers = Callable[[Session, str], list[str]]
_schedule_users: list[ScheduleUsers] = []


def on_schedule_delete(check: ScheduleUsers) -> ScheduleUsers:
    """Ask `check(session, schedule_id)` before a schedule is deleted (idempotent; usable as a decorator)."""
    if check not in _schedule_users:
        _schedule_users.append(check)
    return check


def delete_schedule(session: Session, principal: Principal, schedule_id: str) -> None:
    """Delete a schedule with its layers, overrides and notices (admins); refused while a policy pages it."""
    row = _editable(session, principal, schedule_id)
    users = [name for check in list(_schedule_users) for name in check(session, row.id)]
    if users:
        # A policy left pointing at a deleted schedule would page nobody at that level.
        raise Conflict(f"escalation policies page this schedule: {', '.join(users[:10])}; take it out of them first")
    session.delete(row)
    session.flush()
    with _cache_lock:
        _cache.pop(schedule_id, None)


@dataclass(frozen=True)
class LayerSpec:
    """What a layer is made of, as the edges receive it."""

    name: str
    participants: tuple[str, ...]
    rotation_start: datetime
    turn_length: int = 1
    turn_unit: str = "day"
    restrictions: tuple[dict[str, Any], ...] = ()
    zone: str | None = None
    end: datetime | None = None

    def to_model(self) -> Layer:
        """The model layer (validates every field)."""
        try:
            unit = TurnUnit(self.turn_unit)
        except ValueError as exc:
            raise InvalidInput(f"turn_unit must be one of {[u.value for u in TurnUnit]}") from exc
        return Layer(
            name=self.name,
            participants=self.participants,
            rotation_start=self.rotation_start,
            turn_length=self.turn_length,
            turn_unit=unit,
            restrictions=tuple(restriction_from_json(r) for r in self.restrictions),
            zone=self.zone,
            end=self.end,
        )


def _fill(row: LayerRow, layer: Layer) -> None:
    row.name = layer.name
    row.participants = list(layer.participants)
    row.rotation_start = layer.rotation_start.astimezone(UTC)
    row.turn_length = layer.turn_length
    row.turn_unit = layer.turn_unit.value
    row.restrictions = [restriction_to_json(w) for w in layer.restrictions]
    row.zone = layer.zone
    row.end = layer.end.astimezone(UTC) if layer.end is not None else None


def add_layer(session: Session, clock: Clock, principal: Principal, schedule_id: str, spec: LayerSpec) -> LayerRow:
    """Put a new layer on top of the schedule's others (admins)."""
    row = _editable(session, principal, schedule_id)
    layer = spec.to_model()
    _require_on_call_people(session, layer.participants)
    existing = store.layers_of(session, row.id)
    if len(existing) >= MAX_LAYERS:
        raise InvalidInput(f"a schedule has at most {MAX_LAYERS} layers")
    layer_row = LayerRow(schedule_id=row.id, position=max((x.position for x in existing), default=-1) + 1)
    _fill(layer_row, layer)
    session.add(layer_row)
    session.flush()
    store.bump_version(session, row.id, clock.now())
    return layer_row


def update_layer(
    session: Session, clock: Clock, principal: Principal, schedule_id: str, layer_id: str, spec: LayerSpec
) -> LayerRow:
    """Replace a layer's definition, keeping its place in the stack (admins)."""
    row = _editable(session, principal, schedule_id)
    layer_row = session.get(LayerRow, layer_id)
    if layer_row is None or layer_row.schedule_id != row.id:
        raise NotFound(f"schedule {schedule_id!r} has no layer {layer_id!r}")
    layer = spec.to_model()
    _require_on_call_people(session, layer.participants)
    _fill(layer_row, layer)
    session.flush()
    store.bump_version(session, row.id, clock.now())
    return layer_row


def remove_layer(session: Session, clock: Clock, principal: Principal, schedule_id: str, layer_id: str) -> None:
    """Take a layer out of the schedule (admins)."""
    row = _editable(session, principal, schedule_id)
    layer_row = session.get(LayerRow, layer_id)
    if layer_row is None or layer_row.schedule_id != row.id:
        raise NotFound(f"schedule {schedule_id!r} has no layer {layer_id!r}")
    session.delete(layer_row)
    session.flush()
    store.bump_version(session, row.id, clock.now())


def add_override(
    session: Session,
    clock: Clock,
    principal: Principal,
    schedule_id: str,
    *,
    person_id: str,
    start: datetime,
    end: datetime,
) -> OverrideRow:
    """Put `person_id` on call for [start, end) over every layer (any staff; any span)."""
    principal.require_staff()
    override = Override(person_id, start, end)  # validates the span
    if end - start > timedelta(days=366):
        raise InvalidInput("an override spans at most 366 days")
    row = session.get(ScheduleRow, schedule_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no on-call schedule {schedule_id!r}")
    _require_on_call_people(session, [person_id])
    created = OverrideRow(
        schedule_id=row.id,
        person_id=override.person_id,
        start=override.start.astimezone(UTC),
        end=override.end.astimezone(UTC),
        created_by=principal.person_id,
        created_at=clock.now(),
    )
    session.add(created)
    session.flush()
    store.bump_version(session, row.id, clock.now())
    return created


def remove_override(session: Session, clock: Clock, principal: Principal, schedule_id: str, override_id: int) -> None:
    """Delete an override (any staff)."""
    principal.require_staff()
    found = session.get(OverrideRow, override_id)
    if found is None or found.schedule_id != schedule_id:
        raise NotFound(f"schedule {schedule_id!r} has no override {override_id}")
    session.delete(found)
    session.flush()
    store.bump_version(session, schedule_id, clock.now())


# --- iCal feeds -------------------------------------------------------------------------------

FEED_PAST = timedelta(days=14)
FEED_FUTURE = timedelta(days=90)


def rotate_schedule_token(session: Session, clock: Clock, principal: Principal, schedule_id: str) -> str:
    """A new secret for the schedule's iCal URL; the old URL stops working (admins)."""
    row = _editable(session, principal, schedule_id)
    row.ical_token = _new_token()
    session.flush()
    return row.ical_token


def person_feed_token(session: Session, clock: Clock, principal: Principal, *, rotate: bool = False) -> str:
    """The secret of the caller's own iCal URL, made on first use; `rotate` replaces it."""
    principal.require_staff()
    feed = session.get(PersonFeedRow, principal.person_id, with_for_update=True)
    if feed is None:
        feed = PersonFeedRow(person_id=principal.person_id, ical_token=_new_token(), created_at=clock.now())
        session.add(feed)
    elif rotate:
        feed.ical_token = _new_token()
        feed.created_at = clock.now()
    session.flush()
    return feed.ical_token


def ical_feed(session: Session, clock: Clock, token: str) -> bytes:
    """The iCal feed (two weeks back, ninety days ahead) that `token` opens: a schedule's or a person's."""
    from zhiban.oncall.ical import person_ical, schedule_ical  # icalendar is imported only when a feed is asked for

    if not token or len(token) > 64:
        raise NotFound("no such feed")
    now = clock.now()
    start, end = now - FEED_PAST, now + FEED_FUTURE
    row = store.schedule_by_token(session, token)
    if row is not None:
        schedule = load_schedule(session, row.id)
        people = {p for layer in schedule.layers for p in layer.participants}
        people |= {o.person_id for o in schedule.overrides}
        return schedule_ical(schedule, start, end, dtstamp=now, person_names=names_of(session, people))
    feed = store.feed_by_token(session, token)
    person = identity.person(session, feed.person_id) if feed is not None else None
    if feed is None or person is None or not person.active:
        raise NotFound("no such feed")
    schedules = [load_schedule(session, r.id) for r in store.all_schedules(session)]
    return person_ical(schedules, person.id, start, end, dtstamp=now, person_names={person.id: person.name})


# --- gaps ahead -------------------------------------------------------------------------------


def ensure_gap_check(session: Session, clock: Clock) -> None:
    """Make sure today's gap check is queued (it queues tomorrow's itself)."""
    from zhiban.engine import enqueue

    now = clock.now()
    enqueue(session, GAP_CHECK_JOB, {}, due_at=now, dedup_key=f"{GAP_CHECK_JOB}:{now.date().isoformat()}")


def schedule_next_gap_check(session: Session, clock: Clock) -> None:
    """Queue tomorrow's gap check at 01:00 UTC."""
    from zhiban.engine import enqueue

    tomorrow = clock.now().date() + timedelta(days=1)
    due = datetime.combine(tomorrow, time(1, 0), tzinfo=UTC)
    enqueue(session, GAP_CHECK_JOB, {}, due_at=due, dedup_key=f"{GAP_CHECK_JOB}:{tomorrow.isoformat()}")


def record_gap_notices(session: Session, clock: Clock, horizon: timedelta = GAP_HORIZON) -> list[GapNoticeRow]:
    """Find holes in the next `horizon` of every owned schedule; record a notice per new hole for its owner.

    A hole seen again (it overlaps a notice) is the same hole seen from a later day: its notice is stretched
    to the hole's new end instead of telling the owner twice.
    """
    now = clock.now()
    made: list[GapNoticeRow] = []
    for row in store.all_schedules(session):
        if row.owner_id is None:
            continue
        schedule = load_schedule(session, row.id)
        known = list(
            session.scalars(
                select(GapNoticeRow).where(
                    GapNoticeRow.schedule_id == row.id,
                    GapNoticeRow.person_id == row.owner_id,
                    GapNoticeRow.end >= now,
                )
            )
        )
        for start, end in gaps(schedule, now, now + horizon, min_length=timedelta(minutes=1)):
            seen = next((n for n in known if n.start < end and n.end > start), None)
            if seen is not None:
                if end > seen.end:
                    seen.end = end
                continue
            note = GapNoticeRow(
                schedule_id=row.id, person_id=row.owner_id, start=start, end=end, created_at=now, emailed_at=None
            )
            session.add(note)
            known.append(note)
            made.append(note)
    session.flush()
    return made


def notices_for(session: Session, principal: Principal, limit: int = 100) -> list[GapNoticeRow]:
    """The caller's gap notices, newest first."""
    principal.require_staff()
    query = select(GapNoticeRow).where(GapNoticeRow.person_id == principal.person_id)
    return list(session.scalars(query.order_by(GapNoticeRow.id.desc()).limit(limit)))


# --- the week grid of a schedule page ---------------------------------------------------------


@dataclass(frozen=True)
class GridShift:
    """A shift's piece within one day of the viewer's zone, with the whole shift for 'cover'."""

    person_id: str
    start: datetime  # the piece, UTC
    end: datetime
    shift_start: datetime  # the whole shift, UTC
    shift_end: datetime
    is_override: bool
    top_percent: float
    height_percent: float


@dataclass(frozen=True)
class GridDay:
    day: datetime  # local midnight
    pieces: tuple[GridShift, ...]


def week_grid(schedule: Schedule, week_start_local: datetime) -> list[GridDay]:
    """Seven days from a local midnight, each with the shift pieces that fall in it (viewer's zone)."""
    zone = week_start_local.tzinfo
    if zone is None:
        raise InvalidInput("the week starts at an aware local midnight")
    days: list[GridDay] = []
    day_starts = [datetime.combine(week_start_local.date() + timedelta(days=i), time(0), tzinfo=zone) for i in range(8)]
    bounds = [d.astimezone(UTC) for d in day_starts]
    final = shifts(schedule, bounds[0] - LOOKBACK, bounds[-1] + LOOKBACK)
    for i in range(7):
        begin, finish = bounds[i], bounds[i + 1]
        length = (finish - begin).total_seconds()
        pieces = []
        for s in final:
            lo, hi = max(s.start, begin), min(s.end, finish)
            if lo >= hi:
                continue
            pieces.append(
                GridShift(
                    person_id=s.person_id,
                    start=lo,
                    end=hi,
                    shift_start=s.start,
                    shift_end=s.end,
                    is_override=s.is_override,
                    top_percent=round((lo - begin).total_seconds() * 100 / length, 2),
                    height_percent=round((hi - lo).total_seconds() * 100 / length, 2),
                )
            )
        days.append(GridDay(day_starts[i], tuple(pieces)))
    return days


# --- the demo ---------------------------------------------------------------------------------


def seed_demo_schedules(session: Session, clock: Clock) -> list[str]:
    """Create the demo schedules once ("Network primary", "Duty manager"); returns the names made."""
    emails = ("admin@zhiban.demo", "li.na@zhiban.demo", "sam@zhiban.demo")
    admin, li_na, sam = (identity.person_with_email(session, e) for e in emails)
    if admin is None or li_na is None or sam is None:
        raise NotFound("the demo people are missing: run the demo seed first")
    acting = Principal(person_id=admin.id, role=Role.ADMIN, organization_id=None, name=admin.name)
    zone = "Asia/Shanghai"
    local_now = clock.now().astimezone(zone_of(zone))
    # Handoffs on Monday 09:00 Shanghai, from the Monday of this week (so someone is on call at once).
    monday = local_now.date() - timedelta(days=local_now.weekday())
    handoff = datetime.combine(monday, time(9, 0), tzinfo=zone_of(zone))
    if handoff > local_now:
        handoff -= timedelta(days=7)
    made: list[str] = []
    if store.schedule_by_name(session, "Network primary") is None:
        network = create_schedule(session, clock, acting, name="Network primary", zone=zone, owner_id=admin.id)
        add_layer(
            session,
            clock,
            acting,
            network.id,
            LayerSpec("Weekly", (li_na.id, sam.id), handoff, turn_length=7, turn_unit="day"),
        )
        made.append(network.name)
    if store.schedule_by_name(session, "Duty manager") is None:
        duty = create_schedule(session, clock, acting, name="Duty manager", zone=zone, owner_id=admin.id)
        add_layer(session, clock, acting, duty.id, LayerSpec("Always", (admin.id,), handoff, 7, "day"))
        made.append(duty.name)
    return made
