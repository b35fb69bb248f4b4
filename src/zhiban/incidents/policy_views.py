"""Escalation policy pages: every staff member reads them; admins create, edit and delete (as in the API).

A form is read into the API's `PolicyIn`, so its levels are checked and stored exactly as an API client's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from zhiban.core.errors import InvalidInput
from zhiban.identity import service as identity
from zhiban.identity.model import Principal
from zhiban.incidents import service
from zhiban.incidents.api import ConditionIn, LevelIn, PolicyIn, TargetIn, WindowIn
from zhiban.incidents.escalation import MAX_CONDITION_WINDOWS, MAX_LEVELS, MAX_TARGETS_PER_LEVEL
from zhiban.oncall import service as oncall
from zhiban.oncall.editor import zone_names
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident
from zhiban.web.forms import RawForm, change, text, texts
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

if TYPE_CHECKING:
    from zhiban.incidents.store import EscalationPolicyRow

router = APIRouter(include_in_schema=False, dependencies=[by_method("incidents:read", "admin")])

TARGET_KINDS = ("person", "schedule", "team")
SPARE_TARGETS = 2
SPARE_WINDOWS = 1
ALL_DAYS = tuple(range(7))


def _default(name: str) -> str:
    return str(PolicyIn.model_fields[name].default)


@dataclass
class WindowFields:
    """A time-of-day window of a level's condition, on some weekdays."""

    start: str = ""
    end: str = ""
    weekdays: list[int] = field(default_factory=lambda: list(ALL_DAYS))

    @property
    def used(self) -> bool:
        return bool(self.start or self.end)


@dataclass
class TargetFields:
    choice: str = ""  # "<kind>:<id>", as the target menu offers it
    round_robin: bool = False


@dataclass
class LevelFields:
    delay: str = "5"
    targets: list[TargetFields] = field(default_factory=list)
    business: str = ""  # "" any time, "in" or "out" of business hours
    zone: str = ""  # of the windows; "" is the policy calendar's zone
    windows: list[WindowFields] = field(default_factory=list)

    @property
    def used(self) -> bool:
        return any(t.choice for t in self.targets)

    def to_api(self, calendar_zone: str) -> LevelIn:
        if not self.delay.isdigit():
            raise InvalidInput("each level's delay is a whole number of minutes")
        targets = []
        for t in self.targets:
            kind, _, ref = t.choice.partition(":")
            if t.choice and (kind not in TARGET_KINDS or not ref):
                raise InvalidInput(f"not a target: {t.choice!r}")
            if t.choice:
                targets.append(TargetIn.model_validate({"kind": kind, "ref": ref, "round_robin": t.round_robin}))
        windows = [WindowIn(start=w.start, end=w.end, weekdays=w.weekdays) for w in self.windows if w.used]
        condition = None
        if windows or self.business in ("in", "out"):
            business = {"in": True, "out": False}.get(self.business)
            condition = ConditionIn(zone=self.zone or calendar_zone, windows=windows, business_hours=business)
        return LevelIn(delay_minutes=int(self.delay), targets=targets, condition=condition)


def _days(form: FormData, name: str) -> list[int]:
    return sorted({int(d) for d in texts(form, name) if d in {"0", "1", "2", "3", "4", "5", "6"}})


@dataclass
class PolicyFields:
    name: str = ""
    repeats: str = _default("repeats")
    calendar_country: str = _default("calendar_country")
    calendar_zone: str = _default("calendar_zone")
    levels: list[LevelFields] = field(default_factory=list)

    @classmethod
    def of(cls, form: FormData) -> PolicyFields:
        levels = []
        for i in range(MAX_LEVELS + 1):
            if f"l{i}_delay" not in form:
                break
            targets = []
            for j in range(MAX_TARGETS_PER_LEVEL + 1):
                if f"l{i}_t{j}" not in form:
                    break
                targets.append(TargetFields(text(form, f"l{i}_t{j}"), bool(text(form, f"l{i}_rr{j}"))))
            windows = []
            for k in range(MAX_CONDITION_WINDOWS + 1):
                if f"l{i}_w{k}_start" not in form:
                    break
                days = _days(form, f"l{i}_w{k}_day")
                windows.append(WindowFields(text(form, f"l{i}_w{k}_start"), text(form, f"l{i}_w{k}_end"), days))
            levels.append(
                LevelFields(
                    delay=text(form, f"l{i}_delay"),
                    targets=targets,
                    business=text(form, f"l{i}_business"),
                    zone=text(form, f"l{i}_zone"),
                    windows=windows,
                )
            )
        return cls(
            name=text(form, "name"),
            repeats=text(form, "repeats"),
            calendar_country=text(form, "calendar_country"),
            calendar_zone=text(form, "calendar_zone"),
            levels=levels,
        )

    @classmethod
    def of_row(cls, row: EscalationPolicyRow) -> PolicyFields:
        levels = []
        for level in row.levels:
            cond: dict[str, Any] = level.get("condition") or {}
            business = cond.get("business_hours")
            levels.append(
                LevelFields(
                    delay=str(level.get("delay_minutes", 5)),
                    targets=[
                        TargetFields(f"{t['kind']}:{t['ref']}", bool(t.get("round_robin"))) for t in level["targets"]
                    ],
                    business="" if business is None else ("in" if business else "out"),
                    zone=str(cond.get("zone", "")) if cond else "",
                    windows=[
                        WindowFields(
                            str(w.get("start", "")),
                            str(w.get("end", "")),
                            # A week-spanning window (CLI JSON) shows as its first day; saving keeps that day.
                            list(w.get("weekdays", [w["start_weekday"]] if "start_weekday" in w else ALL_DAYS)),
                        )
                        for w in cond.get("windows", [])
                    ],
                )
            )
        return cls(row.name, str(row.repeats), row.calendar_country, row.calendar_zone, levels)

    def to_api(self) -> PolicyIn:
        if not self.repeats.isdigit():
            raise InvalidInput("repeats is a whole number from 0 to 9")
        levels = [level.to_api(self.calendar_zone) for level in self.levels if level.used]
        if not levels:
            raise InvalidInput("a policy needs at least one level with someone to page")
        return PolicyIn(
            name=self.name,
            levels=levels,
            repeats=int(self.repeats),
            calendar_country=self.calendar_country,
            calendar_zone=self.calendar_zone,
        )

    def saved(self) -> dict[str, Any]:
        """The keyword arguments of service.create_policy / update_policy, as the API passes them."""
        return self.to_api().fields()


@dataclass(frozen=True)
class TargetMenu:
    """What a level can page, by kind, as ("<kind>:<id>", name) pairs; `names` labels stored targets."""

    groups: list[tuple[str, list[tuple[str, str]]]]
    names: dict[str, str]


def target_menu(session: Session, principal: Principal) -> TargetMenu:
    people = [(f"person:{p.id}", p.name) for p in oncall.staff_people(session)]
    schedules = [(f"schedule:{s.id}", s.name) for s in oncall.list_schedules(session, principal)]
    teams = [(f"team:{t.id}", t.name) for t in identity.teams(session)]
    groups = [("person", people), ("schedule", schedules), ("team", teams)]
    return TargetMenu(groups, {value: name for _, options in groups for value, name in options})


def _with_spares(fields: PolicyFields) -> PolicyFields:
    """The filled-in rows plus empty ones to fill: a new level, more targets and windows on each level.

    Rows left empty are dropped first (saving ignores them), so a form shown again after a refusal keeps its size.
    """
    levels = [level for level in fields.levels if level.used]
    if len(levels) < MAX_LEVELS:
        levels.append(LevelFields())
    padded = []
    for level in levels:
        targets = [t for t in level.targets if t.choice]
        targets += [TargetFields() for _ in range(max(SPARE_TARGETS, 3 - len(targets)))]
        windows = [w for w in level.windows if w.used] + [WindowFields() for _ in range(SPARE_WINDOWS)]
        padded.append(
            LevelFields(
                level.delay,
                targets[:MAX_TARGETS_PER_LEVEL],
                level.business,
                level.zone,
                windows[:MAX_CONDITION_WINDOWS],
            )
        )
    return PolicyFields(fields.name, fields.repeats, fields.calendar_country, fields.calendar_zone, padded)


def _policy_form(
    request: Request,
    session: Session,
    principal: Principal,
    fields: PolicyFields,
    *,
    policy: EscalationPolicyRow | None = None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    users = []
    if policy is not None:
        users = service.services_by_policy(session, policy.id).get(policy.id, [])
    return render(
        request,
        "incidents/policy_form.html",
        status,
        policy=policy,
        fields=_with_spares(fields),
        menu=target_menu(session, principal),
        used_by=users,
        zones=zone_names(),
        error=error,
    )


@router.get("/oncall/policies", response_class=HTMLResponse)
def policy_list(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    principal.require_staff()
    policies = service.list_policies(session)
    users = service.services_by_policy(session)
    return render(
        request, "incidents/policies.html", policies=policies, menu=target_menu(session, principal), used_by=users
    )


@router.get("/oncall/policies/new", response_class=HTMLResponse)
def new_policy(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    return _policy_form(request, session, principal, PolicyFields())


@router.post("/oncall/policies/new")
def create_policy(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, form: RawForm
) -> Response:
    principal.require_admin()
    fields = PolicyFields.of(form)
    with change(session) as outcome:
        service.create_policy(session, clock, **fields.saved())
    if outcome.error:
        return _policy_form(request, session, principal, fields, status=outcome.status, error=outcome.error)
    return RedirectResponse("/oncall/policies", status_code=303)


@router.get("/oncall/policies/{policy_id}", response_class=HTMLResponse)
def edit_policy(request: Request, session: DB, principal: CurrentPrincipal, policy_id: Ident) -> Response:
    principal.require_admin()
    row = service.get_policy(session, policy_id)
    return _policy_form(request, session, principal, PolicyFields.of_row(row), policy=row)


@router.post("/oncall/policies/{policy_id}")
def save_policy(
    request: Request, session: DB, principal: CurrentPrincipal, policy_id: Ident, form: RawForm
) -> Response:
    principal.require_admin()
    row = service.get_policy(session, policy_id)
    fields = PolicyFields.of(form)
    with change(session) as outcome:
        service.update_policy(session, row.id, **fields.saved())
    if outcome.error:
        return _policy_form(request, session, principal, fields, policy=row, status=outcome.status, error=outcome.error)
    return RedirectResponse("/oncall/policies", status_code=303)


@router.post("/oncall/policies/{policy_id}/delete")
def delete_policy(request: Request, session: DB, principal: CurrentPrincipal, policy_id: Ident) -> Response:
    principal.require_admin()
    row = service.get_policy(session, policy_id)
    with change(session) as outcome:
        service.delete_policy(session, row.id)
    if outcome.error:
        return _policy_form(
            request,
            session,
            principal,
            PolicyFields.of_row(row),
            policy=row,
            status=outcome.status,
            error=outcome.error,
        )
    return RedirectResponse("/oncall/policies", status_code=303)
