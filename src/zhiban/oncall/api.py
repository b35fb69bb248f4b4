"""On-call API (staff only): schedules, layers, overrides, shifts, and the caller's own shifts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from zhiban.core.errors import InvalidInput
from zhiban.identity.model import Principal
from zhiban.oncall import service
from zhiban.oncall.model import Shift, require_aware, zone_of
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident, ShortText
from zhiban.web.scopes import by_method, needs

if TYPE_CHECKING:
    from zhiban.oncall.store import LayerRow, OverrideRow, ScheduleRow

router = APIRouter(prefix="/api/v1", tags=["on-call"], dependencies=[by_method("oncall:read", "oncall:write")])

ScheduleId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
LayerId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
OverrideId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ZoneName = Annotated[str, Field(min_length=1, max_length=64)]
MAX_SHIFT_WINDOW = timedelta(days=92)


def _read(principal: Principal) -> None:
    principal.require_staff()
    principal.require_scope("oncall:read")


def _write(principal: Principal) -> None:
    principal.require_staff()
    principal.require_scope("oncall:write")


class ShiftOut(BaseModel):
    person_id: str
    person_name: str
    start: datetime
    end: datetime
    is_override: bool

    @classmethod
    def of(cls, shift: Shift, names: dict[str, str], zone: ZoneInfo | None = None) -> ShiftOut:
        start, end = (
            (shift.start, shift.end) if zone is None else (shift.start.astimezone(zone), shift.end.astimezone(zone))
        )
        return cls(
            person_id=shift.person_id,
            person_name=names.get(shift.person_id, ""),
            start=start,
            end=end,
            is_override=shift.is_override,
        )


class RestrictionIn(BaseModel):
    kind: Literal["daily", "weekly"]
    start: Annotated[str, Field(min_length=4, max_length=8, examples=["18:00"])]
    end: Annotated[str, Field(min_length=4, max_length=8, examples=["09:00"])]
    weekdays: Annotated[list[Annotated[int, Field(ge=0, le=6)]], Field(max_length=7)] = [0, 1, 2, 3, 4, 5, 6]
    start_weekday: Annotated[int, Field(ge=0, le=6)] | None = None
    end_weekday: Annotated[int, Field(ge=0, le=6)] | None = None


class LayerIn(BaseModel):
    name: ShortText
    participants: Annotated[list[Ident], Field(min_length=1, max_length=500)]
    rotation_start: datetime
    turn_length: Annotated[int, Field(ge=1, le=366)] = 1
    turn_unit: Literal["hour", "day"] = "day"
    restrictions: Annotated[list[RestrictionIn], Field(max_length=50)] = []
    zone: ZoneName | None = None
    end: datetime | None = None

    def spec(self) -> service.LayerSpec:
        windows: list[dict[str, Any]] = []
        for r in self.restrictions:
            if r.kind == "daily":
                windows.append({"kind": "daily", "start": r.start, "end": r.end, "weekdays": r.weekdays})
            else:
                windows.append(
                    {
                        "kind": "weekly",
                        "start": r.start,
                        "end": r.end,
                        "start_weekday": r.start_weekday,
                        "end_weekday": r.end_weekday,
                    }
                )
        return service.LayerSpec(
            name=self.name,
            participants=tuple(self.participants),
            rotation_start=self.rotation_start,
            turn_length=self.turn_length,
            turn_unit=self.turn_unit,
            restrictions=tuple(windows),
            zone=self.zone,
            end=self.end,
        )


class LayerOut(BaseModel):
    id: str
    position: int
    name: str
    participants: list[str]
    rotation_start: datetime
    turn_length: int
    turn_unit: str
    restrictions: list[dict[str, object]]
    zone: str | None
    end: datetime | None

    @classmethod
    def of(cls, row: LayerRow) -> LayerOut:
        return cls(
            id=row.id,
            position=row.position,
            name=row.name,
            participants=list(row.participants),
            rotation_start=row.rotation_start,
            turn_length=row.turn_length,
            turn_unit=row.turn_unit,
            restrictions=list(row.restrictions),
            zone=row.zone,
            end=row.end,
        )


class OverrideIn(BaseModel):
    person_id: Ident
    start: datetime
    end: datetime


class OverrideOut(BaseModel):
    id: int
    person_id: str
    start: datetime
    end: datetime
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: OverrideRow) -> OverrideOut:
        return cls(
            id=row.id,
            person_id=row.person_id,
            start=row.start,
            end=row.end,
            created_by=row.created_by,
            created_at=row.created_at,
        )


class ScheduleIn(BaseModel):
    name: ShortText
    zone: ZoneName = "Asia/Shanghai"
    owner_id: Ident | None = None


class SchedulePatch(BaseModel):
    name: ShortText | None = None
    zone: ZoneName | None = None
    owner_id: Ident | None = None
    clear_owner: bool = False


class ScheduleOut(BaseModel):
    id: str
    name: str
    zone: str
    owner_id: str | None
    version: int
    on_call_now: list[str]
    updated_at: datetime


class ScheduleDetail(ScheduleOut):
    layers: list[LayerOut]
    overrides: list[OverrideOut] = Field(description="overrides not yet over")
    current: ShiftOut | None
    next: list[ShiftOut]
    ical_url: str = Field(description="subscribable iCal feed; keep it secret")


class FeedOut(BaseModel):
    ical_url: str


def _out(session: DB, row: ScheduleRow, now: datetime) -> ScheduleOut:
    return ScheduleOut(
        id=row.id,
        name=row.name,
        zone=row.zone,
        owner_id=row.owner_id,
        version=row.version,
        on_call_now=service.on_call_now(session, row.id, now),
        updated_at=row.updated_at,
    )


@router.get("/schedules", response_model=list[ScheduleOut], summary="Every on-call schedule, with who is on call now")
def list_schedules(session: DB, clock: ClockDep, principal: CurrentPrincipal) -> list[ScheduleOut]:
    _read(principal)
    now = clock.now()
    return [_out(session, row, now) for row in service.list_schedules(session, principal)]


@router.post(
    "/schedules",
    status_code=201,
    response_model=ScheduleOut,
    summary="Create a schedule (admins)",
    dependencies=[needs("admin")],
)
def create_schedule(
    body: ScheduleIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, response: Response
) -> ScheduleOut:
    _write(principal)
    row = service.create_schedule(session, clock, principal, name=body.name, zone=body.zone, owner_id=body.owner_id)
    response.headers["Location"] = f"/api/v1/schedules/{row.id}"
    return _out(session, row, clock.now())


@router.get("/schedules/{schedule_id}", response_model=ScheduleDetail, summary="A schedule: layers, now and next")
def get_schedule(session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId) -> ScheduleDetail:
    _read(principal)
    now = clock.now()
    row = service.get_schedule(session, principal, schedule_id)
    current, following = service.now_and_next(session, row.id, now)
    names = service.names_of(session, {s.person_id for s in [*following, *([current] if current else [])]})
    return ScheduleDetail(
        **_out(session, row, now).model_dump(),
        layers=[LayerOut.of(x) for x in service.layers(session, principal, row.id)],
        overrides=[OverrideOut.of(o) for o in service.upcoming_overrides(session, principal, row.id, now)],
        current=ShiftOut.of(current, names) if current is not None else None,
        next=[ShiftOut.of(s, names) for s in following],
        ical_url=f"/oncall/ical/{row.ical_token}.ics",
    )


@router.patch(
    "/schedules/{schedule_id}",
    response_model=ScheduleOut,
    summary="Rename, re-zone or re-own (admins)",
    dependencies=[needs("admin")],
)
def patch_schedule(
    body: SchedulePatch, session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId
) -> ScheduleOut:
    _write(principal)
    row = service.update_schedule(
        session,
        clock,
        principal,
        schedule_id,
        name=body.name,
        zone=body.zone,
        owner_id=body.owner_id,
        clear_owner=body.clear_owner,
    )
    return _out(session, row, clock.now())


@router.delete(
    "/schedules/{schedule_id}",
    status_code=204,
    summary="Delete a schedule no policy pages (admins)",
    dependencies=[needs("admin")],
)
def delete_schedule(session: DB, principal: CurrentPrincipal, schedule_id: ScheduleId) -> Response:
    _write(principal)
    service.delete_schedule(session, principal, schedule_id)
    return Response(status_code=204)


@router.post(
    "/schedules/{schedule_id}/layers",
    status_code=201,
    response_model=LayerOut,
    summary="Add a layer on top (admins)",
    dependencies=[needs("admin")],
)
def add_layer(
    body: LayerIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId
) -> LayerOut:
    _write(principal)
    return LayerOut.of(service.add_layer(session, clock, principal, schedule_id, body.spec()))


@router.put(
    "/schedules/{schedule_id}/layers/{layer_id}",
    response_model=LayerOut,
    summary="Replace a layer (admins)",
    dependencies=[needs("admin")],
)
def put_layer(
    body: LayerIn,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    schedule_id: ScheduleId,
    layer_id: LayerId,
) -> LayerOut:
    _write(principal)
    return LayerOut.of(service.update_layer(session, clock, principal, schedule_id, layer_id, body.spec()))


@router.delete(
    "/schedules/{schedule_id}/layers/{layer_id}",
    status_code=204,
    summary="Remove a layer (admins)",
    dependencies=[needs("admin")],
)
def delete_layer(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId, layer_id: LayerId
) -> Response:
    _write(principal)
    service.remove_layer(session, clock, principal, schedule_id, layer_id)
    return Response(status_code=204)


@router.post(
    "/schedules/{schedule_id}/overrides", status_code=201, response_model=OverrideOut, summary="Add an override"
)
def add_override(
    body: OverrideIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId
) -> OverrideOut:
    _write(principal)
    row = service.add_override(
        session, clock, principal, schedule_id, person_id=body.person_id, start=body.start, end=body.end
    )
    return OverrideOut.of(row)


@router.delete("/schedules/{schedule_id}/overrides/{override_id}", status_code=204, summary="Delete an override")
def delete_override(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId, override_id: OverrideId
) -> Response:
    _write(principal)
    service.remove_override(session, clock, principal, schedule_id, override_id)
    return Response(status_code=204)


def _window(
    start: datetime | None, end: datetime | None, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    begin = require_aware(start, "start") if start is not None else now
    finish = require_aware(end, "end") if end is not None else begin + default
    if not begin < finish or finish - begin > MAX_SHIFT_WINDOW:
        raise InvalidInput(f"start must be before end, at most {MAX_SHIFT_WINDOW.days} days apart")
    return begin, finish


@router.get(
    "/schedules/{schedule_id}/shifts", response_model=list[ShiftOut], summary="Final shifts in [start, end) (UTC)"
)
def list_shifts(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    schedule_id: ScheduleId,
    start: Annotated[datetime | None, Query(description="aware ISO time; default now")] = None,
    end: Annotated[datetime | None, Query(description="aware ISO time; default start + 7 days")] = None,
) -> list[ShiftOut]:
    _read(principal)
    service.get_schedule(session, principal, schedule_id)
    begin, finish = _window(start, end, clock.now(), timedelta(days=7))
    found = service.shifts_between(session, schedule_id, begin, finish)
    names = service.names_of(session, {s.person_id for s in found})
    return [ShiftOut.of(s, names) for s in found]


@router.post(
    "/schedules/{schedule_id}/ical-token", response_model=FeedOut, summary="New secret iCal URL (old one stops)"
)
def rotate_ical(session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId) -> FeedOut:
    _write(principal)
    token = service.rotate_schedule_token(session, clock, principal, schedule_id)
    return FeedOut(ical_url=f"/oncall/ical/{token}.ics")


class MyShiftOut(ShiftOut):
    schedule_id: str
    schedule_name: str


class MyOnCall(BaseModel):
    zone: str
    shifts: list[MyShiftOut]
    ical_url: str


@router.get("/oncall/me", response_model=MyOnCall, summary="My shifts across schedules, in my time zone")
def my_on_call(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    start: Annotated[datetime | None, Query(description="aware ISO time; default now")] = None,
    end: Annotated[datetime | None, Query(description="aware ISO time; default start + 28 days")] = None,
) -> MyOnCall:
    _read(principal)
    begin, finish = _window(start, end, clock.now(), timedelta(days=28))
    zone = zone_of(principal.timezone)
    mine = service.my_shifts(session, principal, begin, finish)
    names = {principal.person_id: principal.name}
    return MyOnCall(
        zone=zone.key,
        shifts=[
            MyShiftOut(**ShiftOut.of(s, names, zone).model_dump(), schedule_id=sch.id, schedule_name=sch.name)
            for sch, s in mine
        ],
        ical_url=f"/oncall/ical/{service.person_feed_token(session, clock, principal)}.ics",
    )


@router.post("/oncall/me/ical-token", response_model=FeedOut, summary="New secret URL for my iCal feed")
def rotate_my_ical(session: DB, clock: ClockDep, principal: CurrentPrincipal) -> FeedOut:
    _write(principal)
    return FeedOut(ical_url=f"/oncall/ical/{service.person_feed_token(session, clock, principal, rotate=True)}.ics")
