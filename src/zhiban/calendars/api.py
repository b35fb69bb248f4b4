"""Calendars API: business hours, holidays and make-up days (admins edit, staff read), iCal import."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from zhiban.calendars import service
from zhiban.calendars.ical import MAX_ICS_BYTES
from zhiban.core.errors import Forbidden, TooLarge
from zhiban.identity.model import Principal, Role
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident, ShortText
from zhiban.web.scopes import by_method

if TYPE_CHECKING:
    from zhiban.calendars.store import CalendarRow

router = APIRouter(prefix="/api/v1/calendars", tags=["calendars"], dependencies=[by_method("tickets:read", "admin")])

Hours = dict[str, str]
Dates = list[date]


def _admin(principal: Principal) -> None:
    principal.require_scope("admin")
    if principal.role is not Role.ADMIN:
        raise Forbidden("this needs an admin")


class CalendarIn(BaseModel):
    name: ShortText
    tz: str = Field(min_length=1, max_length=64)
    country: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}$")
    weekly: Hours | None = Field(None, description='{"mon": "09:00-18:00", ...}; missing days are closed')
    holidays_added: Dates = Field(default_factory=list, max_length=service.MAX_DATES)
    holidays_removed: Dates = Field(default_factory=list, max_length=service.MAX_DATES)
    workdays_added: Dates = Field(default_factory=list, max_length=service.MAX_DATES)


class CalendarPatch(BaseModel):
    name: ShortText | None = None
    tz: str | None = Field(None, min_length=1, max_length=64)
    weekly: Hours | None = None
    holidays_added: Dates | None = Field(None, max_length=service.MAX_DATES)
    holidays_removed: Dates | None = Field(None, max_length=service.MAX_DATES)
    workdays_added: Dates | None = Field(None, max_length=service.MAX_DATES)


class CalendarOut(BaseModel):
    id: str
    name: str
    tz: str
    country: str | None
    weekly: Hours
    holidays_added: list[str]
    holidays_removed: list[str]
    workdays_added: list[str]
    version: int
    updated_at: datetime

    @classmethod
    def of(cls, r: CalendarRow) -> CalendarOut:
        return cls(**{name: getattr(r, name) for name in cls.model_fields})


@router.get("", response_model=list[CalendarOut], summary="Business calendars")
def list_(session: DB, principal: CurrentPrincipal) -> list[CalendarOut]:
    principal.require_staff()
    return [CalendarOut.of(c) for c in service.list_calendars(session)]


@router.post("", status_code=201, response_model=CalendarOut, summary="Add a calendar (admins)")
def create(body: CalendarIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> CalendarOut:
    _admin(principal)
    row = service.create_calendar(session, clock, **body.model_dump())
    return CalendarOut.of(row)


@router.get("/{calendar_id}", response_model=CalendarOut, summary="One calendar")
def get(session: DB, principal: CurrentPrincipal, calendar_id: Ident) -> CalendarOut:
    principal.require_staff()
    return CalendarOut.of(service.get_calendar(session, calendar_id))


@router.patch("/{calendar_id}", response_model=CalendarOut, summary="Change a calendar; open tickets follow")
def patch(
    body: CalendarPatch, session: DB, clock: ClockDep, principal: CurrentPrincipal, calendar_id: Ident
) -> CalendarOut:
    _admin(principal)
    row = service.update_calendar(session, clock, calendar_id, **body.model_dump(exclude_none=True))
    return CalendarOut.of(row)


@router.delete("/{calendar_id}", status_code=204, summary="Remove an unused calendar (admins)")
def delete(session: DB, principal: CurrentPrincipal, calendar_id: Ident) -> Response:
    _admin(principal)
    service.delete_calendar(session, calendar_id)
    return Response(status_code=204)


class ImportOut(BaseModel):
    calendar: CalendarOut
    new_holidays: int


@router.post("/{calendar_id}/ical", response_model=ImportOut, summary="Close the all-day dates of an iCal feed")
async def import_ical(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, calendar_id: Ident
) -> ImportOut:
    _admin(principal)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_ICS_BYTES:
            raise TooLarge(f"iCalendar feed larger than {MAX_ICS_BYTES} bytes")
    row, count = service.import_ical(session, clock, calendar_id, body)
    return ImportOut(calendar=CalendarOut.of(row), new_holidays=count)
