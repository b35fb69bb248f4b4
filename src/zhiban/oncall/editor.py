"""Schedule editor pages (admins): create, rename, re-zone and delete schedules; add, change and remove rotations.

The forms are read into the on-call API's own request models (`ScheduleIn`, `SchedulePatch`, `LayerIn`), so a
layer from the browser is checked and turned into a `LayerSpec` exactly as one from the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cache
from typing import Literal
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from zhiban.core.errors import InvalidInput, NotFound
from zhiban.identity.model import Principal
from zhiban.oncall import service
from zhiban.oncall.api import LayerId, LayerIn, RestrictionIn, ScheduleId, ScheduleIn, SchedulePatch
from zhiban.oncall.model import MAX_RESTRICTIONS, wall_to_utc, zone_of
from zhiban.oncall.store import LayerRow, ScheduleRow
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.forms import RawForm, change, text, texts
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("oncall:read", "admin")])

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# How a rotation is offered in the form, as (turn length, turn unit); "days"/"hours" take the length typed.
ROTATIONS: dict[str, tuple[int | None, Literal["hour", "day"]]] = {
    "daily": (1, "day"),
    "weekly": (7, "day"),
    "days": (None, "day"),
    "hours": (None, "hour"),
}
SPARE_PARTICIPANTS = 2
SPARE_WINDOWS = 2


@cache
def zone_names() -> list[str]:
    """Every IANA zone name, for the zone fields' suggestions."""
    return sorted(available_timezones())


# --- the schedule's own settings ------------------------------------------------------------------


@dataclass
class ScheduleFields:
    name: str = ""
    zone: str = str(ScheduleIn.model_fields["zone"].default)
    owner_id: str = ""

    @classmethod
    def of(cls, form: FormData) -> ScheduleFields:
        return cls(text(form, "name"), text(form, "zone"), text(form, "owner_id"))


def _schedule_form(
    request: Request,
    session: DB,
    fields: ScheduleFields,
    *,
    schedule: ScheduleRow | None = None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "oncall/schedule_form.html",
        status,
        schedule=schedule,
        fields=fields,
        people=service.staff_people(session),
        zones=zone_names(),
        error=error,
    )


@router.get("/oncall/schedules/new", response_class=HTMLResponse)
def new_schedule(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    return _schedule_form(request, session, ScheduleFields())


@router.post("/oncall/schedules/new")
def create_schedule(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, form: RawForm
) -> Response:
    principal.require_admin()
    fields = ScheduleFields.of(form)
    with change(session) as outcome:
        body = ScheduleIn(name=fields.name, zone=fields.zone, owner_id=fields.owner_id or None)
        row = service.create_schedule(session, clock, principal, name=body.name, zone=body.zone, owner_id=body.owner_id)
    if outcome.error:
        return _schedule_form(request, session, fields, status=outcome.status, error=outcome.error)
    return RedirectResponse(f"/oncall/schedules/{row.id}", status_code=303)


@router.get("/oncall/schedules/{schedule_id}/settings", response_class=HTMLResponse)
def schedule_settings(request: Request, session: DB, principal: CurrentPrincipal, schedule_id: ScheduleId) -> Response:
    principal.require_admin()
    row = service.get_schedule(session, principal, schedule_id)
    return _schedule_form(request, session, ScheduleFields(row.name, row.zone, row.owner_id or ""), schedule=row)


@router.post("/oncall/schedules/{schedule_id}/settings")
def save_schedule_settings(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId, form: RawForm
) -> Response:
    principal.require_admin()
    row = service.get_schedule(session, principal, schedule_id)
    fields = ScheduleFields.of(form)
    with change(session) as outcome:
        body = SchedulePatch(name=fields.name, zone=fields.zone, owner_id=fields.owner_id or None)
        service.update_schedule(
            session,
            clock,
            principal,
            row.id,
            name=body.name,
            zone=body.zone,
            owner_id=body.owner_id,
            clear_owner=body.owner_id is None,
        )
    if outcome.error:
        session.refresh(row)
        return _schedule_form(request, session, fields, schedule=row, status=outcome.status, error=outcome.error)
    return RedirectResponse(f"/oncall/schedules/{row.id}", status_code=303)


@router.post("/oncall/schedules/{schedule_id}/delete")
def delete_schedule(request: Request, session: DB, principal: CurrentPrincipal, schedule_id: ScheduleId) -> Response:
    principal.require_admin()
    row = service.get_schedule(session, principal, schedule_id)
    with change(session) as outcome:
        service.delete_schedule(session, principal, row.id)
    if outcome.error:
        fields = ScheduleFields(row.name, row.zone, row.owner_id or "")
        return _schedule_form(request, session, fields, schedule=row, status=outcome.status, error=outcome.error)
    return RedirectResponse("/oncall", status_code=303)


# --- rotations (layers) ---------------------------------------------------------------------------


@dataclass
class WindowFields:
    """One restriction row of the form: `kind` "" leaves it out, "daily" or "weekly" as in the API."""

    kind: str = ""
    start: str = ""
    end: str = ""
    weekdays: list[int] = field(default_factory=lambda: list(range(7)))
    start_weekday: int = 0
    end_weekday: int = 0

    def to_api(self) -> RestrictionIn:
        if self.kind == "weekly":
            return RestrictionIn(
                kind="weekly",
                start=self.start,
                end=self.end,
                start_weekday=self.start_weekday,
                end_weekday=self.end_weekday,
            )
        return RestrictionIn(kind="daily", start=self.start, end=self.end, weekdays=self.weekdays)


def _weekday(value: str) -> int:
    return int(value) if value in {"0", "1", "2", "3", "4", "5", "6"} else 0


@dataclass
class LayerFields:
    """A rotation as the form shows it: handoff date and time in the layer's zone, participants in turn order."""

    name: str = ""
    rotation: str = "weekly"
    every: str = "1"
    start_date: str = ""
    handoff: str = "09:00"
    zone: str = ""  # "" is the schedule's zone
    end: str = ""  # optional local date and time
    participants: list[str] = field(default_factory=list)
    windows: list[WindowFields] = field(default_factory=list)

    @classmethod
    def of(cls, form: FormData) -> LayerFields:
        windows = []
        for i in range(MAX_RESTRICTIONS):
            if f"r{i}_kind" not in form:
                break
            windows.append(
                WindowFields(
                    kind=text(form, f"r{i}_kind"),
                    start=text(form, f"r{i}_start"),
                    end=text(form, f"r{i}_end"),
                    weekdays=sorted({_weekday(d) for d in texts(form, f"r{i}_day")}),
                    start_weekday=_weekday(text(form, f"r{i}_from_day")),
                    end_weekday=_weekday(text(form, f"r{i}_to_day")),
                )
            )
        return cls(
            name=text(form, "name"),
            rotation=text(form, "rotation"),
            every=text(form, "every") or "1",
            start_date=text(form, "start_date"),
            handoff=text(form, "handoff"),
            zone=text(form, "zone"),
            end=text(form, "end"),
            participants=texts(form, "participant"),
            windows=windows,
        )

    @classmethod
    def of_row(cls, row: LayerRow, schedule_zone: str) -> LayerFields:
        zone = zone_of(row.zone or schedule_zone)
        start = row.rotation_start.astimezone(zone)
        rotation = {(1, "day"): "daily", (7, "day"): "weekly"}.get((row.turn_length, row.turn_unit))
        windows = []
        for r in row.restrictions:
            weekly = r.get("kind") == "weekly"
            windows.append(
                WindowFields(
                    kind="weekly" if weekly else "daily",
                    start=str(r.get("start", "")),
                    end=str(r.get("end", "")),
                    weekdays=[] if weekly else list(r.get("weekdays", range(7))),
                    start_weekday=int(r.get("start_weekday") or 0),
                    end_weekday=int(r.get("end_weekday") or 0),
                )
            )
        return cls(
            name=row.name,
            rotation=rotation or ("hours" if row.turn_unit == "hour" else "days"),
            every=str(row.turn_length),
            start_date=start.date().isoformat(),
            handoff=start.strftime("%H:%M"),
            zone=row.zone or "",
            end=row.end.astimezone(zone).strftime(LOCAL_FORMAT) if row.end else "",
            participants=list(row.participants),
            windows=windows,
        )

    def to_spec(self, schedule_zone: str) -> service.LayerSpec:
        """The layer as the API would read it (InvalidInput or a ValidationError for bad fields)."""
        if self.rotation not in ROTATIONS:
            raise InvalidInput("choose how the rotation turns: daily, weekly, every N days or every N hours")
        length, unit = ROTATIONS[self.rotation]
        if length is None:
            if not self.every.isdigit():
                raise InvalidInput("the turn length must be a whole number")
            length = int(self.every)
        zone = zone_of(self.zone or schedule_zone)
        try:
            first = date.fromisoformat(self.start_date)
        except ValueError as exc:
            raise InvalidInput("the rotation needs a start date like 2026-11-16") from exc
        try:
            handoff = time.fromisoformat(self.handoff)
        except ValueError as exc:
            raise InvalidInput("the handoff time must be a time of day like 09:00") from exc
        end = None
        if self.end:
            try:
                end = wall_to_utc(datetime.strptime(self.end[:16], LOCAL_FORMAT), zone)
            except ValueError as exc:
                raise InvalidInput("the end must be a date and time like 2027-01-31T09:00, or empty") from exc
        body = LayerIn(
            name=self.name,
            participants=self.participants,
            rotation_start=wall_to_utc(datetime.combine(first, handoff.replace(tzinfo=None)), zone),
            turn_length=length,
            turn_unit=unit,
            restrictions=[w.to_api() for w in self.windows if w.kind in ("daily", "weekly")],
            zone=self.zone or None,
            end=end,
        )
        return body.spec()


def _layer_form(
    request: Request,
    session: DB,
    schedule: ScheduleRow,
    fields: LayerFields,
    *,
    layer: LayerRow | None = None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    people = service.staff_people(session)
    known = {p.id for p in people}
    # Someone no longer on staff still shows in the rotation they are in, so saving keeps or drops them knowingly.
    gone = service.names_of(session, [p for p in fields.participants if p not in known])
    # Rows left as "no window" are dropped (saving ignores them), so a form shown again keeps its size.
    windows = [w for w in fields.windows if w.kind] + [WindowFields() for _ in range(SPARE_WINDOWS)]
    return render(
        request,
        "oncall/layer_form.html",
        status,
        schedule=schedule,
        layer=layer,
        fields=fields,
        people=people,
        known=known,
        gone=gone,
        slots=[*fields.participants, *([""] * max(SPARE_PARTICIPANTS, 4 - len(fields.participants)))],
        windows=windows[:MAX_RESTRICTIONS],
        zones=zone_names(),
        error=error,
    )


def _today(clock_now: datetime, zone_name: str) -> str:
    return clock_now.astimezone(zone_of(zone_name)).date().isoformat()


@router.get("/oncall/schedules/{schedule_id}/layers/new", response_class=HTMLResponse)
def new_layer(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId
) -> Response:
    principal.require_admin()
    row = service.get_schedule(session, principal, schedule_id)
    return _layer_form(request, session, row, LayerFields(start_date=_today(clock.now(), row.zone)))


@router.post("/oncall/schedules/{schedule_id}/layers/new")
def add_layer(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId, form: RawForm
) -> Response:
    principal.require_admin()
    row = service.get_schedule(session, principal, schedule_id)
    fields = LayerFields.of(form)
    with change(session) as outcome:
        service.add_layer(session, clock, principal, row.id, fields.to_spec(row.zone))
    if outcome.error:
        return _layer_form(request, session, row, fields, status=outcome.status, error=outcome.error)
    return RedirectResponse(f"/oncall/schedules/{row.id}", status_code=303)


def _layer_of(session: DB, principal: Principal, schedule_id: str, layer_id: str) -> tuple[ScheduleRow, LayerRow]:
    row = service.get_schedule(session, principal, schedule_id)
    layer = next((x for x in service.layers(session, principal, row.id) if x.id == layer_id), None)
    if layer is None:
        raise NotFound(f"schedule {schedule_id!r} has no layer {layer_id!r}")
    return row, layer


@router.get("/oncall/schedules/{schedule_id}/layers/{layer_id}", response_class=HTMLResponse)
def edit_layer(
    request: Request, session: DB, principal: CurrentPrincipal, schedule_id: ScheduleId, layer_id: LayerId
) -> Response:
    principal.require_admin()
    row, layer = _layer_of(session, principal, schedule_id, layer_id)
    return _layer_form(request, session, row, LayerFields.of_row(layer, row.zone), layer=layer)


@router.post("/oncall/schedules/{schedule_id}/layers/{layer_id}")
def save_layer(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    schedule_id: ScheduleId,
    layer_id: LayerId,
    form: RawForm,
) -> Response:
    principal.require_admin()
    row, layer = _layer_of(session, principal, schedule_id, layer_id)
    fields = LayerFields.of(form)
    with change(session) as outcome:
        service.update_layer(session, clock, principal, row.id, layer.id, fields.to_spec(row.zone))
    if outcome.error:
        return _layer_form(request, session, row, fields, layer=layer, status=outcome.status, error=outcome.error)
    return RedirectResponse(f"/oncall/schedules/{row.id}", status_code=303)


@router.post("/oncall/schedules/{schedule_id}/layers/{layer_id}/delete")
def remove_layer(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, schedule_id: ScheduleId, layer_id: LayerId
) -> Response:
    principal.require_admin()
    service.remove_layer(session, clock, principal, schedule_id, layer_id)
    return RedirectResponse(f"/oncall/schedules/{schedule_id}", status_code=303)
