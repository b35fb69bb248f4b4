"""On-call pages (staff): who is on call, a schedule's week, covering a shift, my on-call; iCal feeds by token."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.identity.model import Principal
from zhiban.oncall import editor, service
from zhiban.oncall.model import Shift, wall_to_utc, zone_of
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

if TYPE_CHECKING:
    from zhiban.oncall.store import ScheduleRow

router = APIRouter(include_in_schema=False, dependencies=[by_method("oncall:read", "oncall:write")])
# The editor's fixed paths (/oncall/schedules/new) must be matched before /oncall/schedules/{schedule_id}.
router.include_router(editor.router)

ScheduleId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Token = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
PALETTE = 8  # person colours in the week grid
# A shift reaching this far ahead has no handoff in sight (e.g. a one-person rotation): say so, not a date.
OPEN_ENDED = timedelta(days=180)


@dataclass(frozen=True)
class ScheduleNow:
    schedule: ScheduleRow
    current: Shift | None
    next: Shift | None


def _zone(principal: Principal) -> str:
    try:
        return zone_of(principal.timezone).key
    except InvalidInput:
        return "UTC"


def _colour(person_id: str) -> int:
    return int(hashlib.sha256(person_id.encode()).hexdigest()[:4], 16) % PALETTE


@router.get("/oncall", response_class=HTMLResponse)
def overview(request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> Response:
    principal.require_staff()
    now = clock.now()
    rows = []
    people: set[str] = set()
    for row in service.list_schedules(session, principal):
        current, following = service.now_and_next(session, row.id, now)
        upcoming = following[0] if following else None
        people |= {s.person_id for s in (current, upcoming) if s is not None}
        rows.append(ScheduleNow(row, current, upcoming))
    notices = service.notices_for(session, principal, limit=20)
    schedule_names = {r.schedule.id: r.schedule.name for r in rows}
    return render(
        request,
        "oncall/overview.html",
        rows=rows,
        names=service.names_of(session, people),
        notices=[n for n in notices if n.end > now],
        open_ended=now + OPEN_ENDED,
        schedule_names=schedule_names,
    )


def _week_start(week: str | None, now: datetime, zone_name: str) -> datetime:
    zone = zone_of(zone_name)
    if week:
        try:
            day = date.fromisoformat(week)
        except ValueError as exc:
            raise InvalidInput("week must be a date like 2026-11-16") from exc
    else:
        day = now.astimezone(zone).date()
    monday = day - timedelta(days=day.weekday())
    return datetime.combine(monday, time(0), tzinfo=zone)


@router.get("/oncall/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    schedule_id: ScheduleId,
    week: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    principal.require_staff()
    now = clock.now()
    row = service.get_schedule(session, principal, schedule_id)
    zone_name = _zone(principal)
    start = _week_start(week, now, zone_name)
    days = service.week_grid(service.load_schedule(session, row.id), start)
    overrides = service.upcoming_overrides(session, principal, row.id, now)
    layer_rows = service.layers(session, principal, row.id)
    people = {p.person_id for d in days for p in d.pieces} | {o.person_id for o in overrides}
    people |= {pid for layer in layer_rows for pid in layer.participants}
    return render(
        request,
        "oncall/schedule.html",
        schedule=row,
        days=days,
        layers=layer_rows,
        overrides=overrides,
        names=service.names_of(session, people),
        colour=_colour,
        now=now,
        zone_name=zone_name,
        prev_week=(start - timedelta(days=7)).date().isoformat(),
        next_week=(start + timedelta(days=7)).date().isoformat(),
        this_week=start.date().isoformat(),
        # Covering a shift already under way starts now, not in the past.
        cover_link=lambda piece: (
            f"/oncall/schedules/{row.id}/override?"
            + urlencode({"start": max(piece.shift_start, now).isoformat(), "end": piece.shift_end.isoformat()})
        ),
        ical_url=f"{str(request.base_url).rstrip('/')}/oncall/ical/{row.ical_token}.ics",
    )


def _aware(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be an ISO time") from exc
    if moment.tzinfo is None:
        raise InvalidInput(f"{what} must carry its zone offset")
    return moment


def _override_form(
    request: Request,
    session: DB,
    principal: Principal,
    schedule_id: str,
    *,
    start_local: str,
    end_local: str,
    person_id: str,
    status: int = 200,
    error: str | None = None,
) -> Response:
    row = service.get_schedule(session, principal, schedule_id)
    return render(
        request,
        "oncall/override.html",
        status,
        schedule=row,
        people=service.staff_people(session),
        person_id=person_id,
        start_local=start_local,
        end_local=end_local,
        zone_name=_zone(principal),
        error=error,
    )


@router.get("/oncall/schedules/{schedule_id}/override", response_class=HTMLResponse)
def override_form(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    schedule_id: ScheduleId,
    start: Annotated[str | None, Query(max_length=40)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The override form, pre-filled with a shift's span and the viewer (the 'cover' button's target)."""
    principal.require_staff()
    zone = zone_of(_zone(principal))
    begin = _aware(start, "start") if start else clock.now()
    finish = _aware(end, "end") if end else begin + timedelta(hours=1)
    return _override_form(
        request,
        session,
        principal,
        schedule_id,
        start_local=begin.astimezone(zone).strftime(LOCAL_FORMAT),
        end_local=finish.astimezone(zone).strftime(LOCAL_FORMAT),
        person_id=principal.person_id,
    )


def _local(value: str, zone_name: str, what: str) -> datetime:
    try:
        wall = datetime.strptime(value.strip()[:16], LOCAL_FORMAT)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a date and time like 2026-11-21T09:00") from exc
    return wall_to_utc(wall, zone_of(zone_name))


@router.post("/oncall/schedules/{schedule_id}/override")
def override_submit(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    schedule_id: ScheduleId,
    person_id: Annotated[str, Form(min_length=1, max_length=64)],
    start: Annotated[str, Form(min_length=1, max_length=40)],
    end: Annotated[str, Form(min_length=1, max_length=40)],
    zone: Annotated[str, Form(min_length=1, max_length=64)] = "UTC",
) -> Response:
    principal.require_staff()
    try:
        begin, finish = _local(start, zone, "start"), _local(end, zone, "end")
        service.add_override(session, clock, principal, schedule_id, person_id=person_id, start=begin, end=finish)
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        return _override_form(
            request,
            session,
            principal,
            schedule_id,
            start_local=start,
            end_local=end,
            person_id=person_id,
            status=422,
            error=exc.detail,
        )
    week = begin.astimezone(zone_of(_zone(principal))).date().isoformat()
    return RedirectResponse(f"/oncall/schedules/{schedule_id}?week={week}", status_code=303)


@router.post("/oncall/schedules/{schedule_id}/overrides/{override_id}/delete")
def override_delete(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    schedule_id: ScheduleId,
    override_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> Response:
    service.remove_override(session, clock, principal, schedule_id, override_id)
    return RedirectResponse(f"/oncall/schedules/{schedule_id}", status_code=303)


@router.post("/oncall/schedules/{schedule_id}/ical-token")
def rotate_schedule_feed(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId
) -> Response:
    service.rotate_schedule_token(session, clock, principal, schedule_id)
    return RedirectResponse(f"/oncall/schedules/{schedule_id}", status_code=303)


@router.get("/oncall/me", response_class=HTMLResponse)
def my_on_call(request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> Response:
    principal.require_staff()
    now = clock.now()
    # From a month back, so the shift under way shows its real start.
    mine = service.my_shifts(session, principal, now - service.LOOKBACK, now + timedelta(days=28))
    mine = [(schedule, shift) for schedule, shift in mine if shift.end > now]
    token = service.person_feed_token(session, clock, principal)
    return render(
        request,
        "oncall/me.html",
        shifts=mine,
        now=now,
        zone_name=_zone(principal),
        ical_url=f"{str(request.base_url).rstrip('/')}/oncall/ical/{token}.ics",
    )


@router.post("/oncall/me/ical-token")
def rotate_my_feed(session: DB, clock: ClockDep, principal: CurrentPrincipal) -> Response:
    service.person_feed_token(session, clock, principal, rotate=True)
    return RedirectResponse("/oncall/me", status_code=303)


@router.get("/oncall/ical/{token}.ics")
def ical(session: DB, clock: ClockDep, token: Token) -> Response:
    """A schedule's or a person's iCal feed; the secret token is the only credential."""
    body = service.ical_feed(session, clock, token)
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "Content-Disposition": 'inline; filename="oncall.ics"'},
    )
