"""How a person is paged: their contact methods and notification rules (staff: their own; admins: anyone's).

Who may edit whose rules is the API's rule (`paged_person`); forms are read into the API's own request models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, get_origin

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from zhiban.core.errors import InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal, Role
from zhiban.identity.service import staff as staff_people
from zhiban.notify import inbox_views, outbox, service
from zhiban.notify.api import ContactMethodIn, RuleIn, paged_person
from zhiban.notify.registry import CHANNEL_TYPES, channel_type
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, viewer_language
from zhiban.web.fields import Ident
from zhiban.web.forms import RawForm, change, text
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

# Paging settings and the outbox (on-call scopes); the inbox pages have their own router (tickets scopes).
paging = APIRouter(include_in_schema=False, dependencies=[by_method("oncall:read", "oncall:write")])

PAGE = "/oncall/notifications"


def destination_config(channel: str, address: str, secret: str) -> dict[str, Any]:
    """A channel's config from the form's two fields: the address goes in the config's first field, a list if
    that field is one (e-mail recipients); the secret, if any, in its `secret` field."""
    model = channel_type(channel).config_model
    first, info = next(iter(model.model_fields.items()))
    value: Any = [a for a in re.split(r"[,;\s]+", address) if a] if get_origin(info.annotation) is list else address
    config: dict[str, Any] = {first: value}
    if secret:
        if "secret" not in model.model_fields:
            raise InvalidInput(f"a {channel} destination takes no secret")
        config["secret"] = secret
    return config


def _person(session: Session, principal: Principal, person_id: str | None) -> Person:
    """The person whose paging is shown: the caller, or (admins) any active agent or admin."""
    chosen = paged_person(principal, person_id or None)
    person = identity.person(session, chosen)
    if person is None or person.role == Role.CUSTOMER or not person.active:
        raise NotFound(f"no active agent or admin {chosen!r}")
    return person


def _page(
    request: Request,
    session: Session,
    principal: Principal,
    person: Person,
    *,
    method_form: dict[str, str] | None = None,
    rule_form: dict[str, str] | None = None,
    status: int = 200,
    method_error: str | None = None,
    rule_error: str | None = None,
) -> Response:
    methods = service.contact_methods_of(session, person.id)
    lang = viewer_language(request)
    titles = {c.name: (c.title_zh if lang == "zh" else c.title_en) for c in CHANNEL_TYPES}
    return render(
        request,
        "notify/notifications.html",
        status,
        person=person,
        people=staff_people(session) if principal.role == Role.ADMIN else [],
        methods=methods,
        method_names={m.id: m.label or titles.get(m.channel, m.channel) for m in methods},
        rules=service.rules_of(session, person.id),
        channels=[(c.name, titles[c.name]) for c in CHANNEL_TYPES if c.contact],
        titles=titles,
        urgencies=service.URGENCIES,
        method_form=method_form or {"channel": "email", "address": "", "label": ""},
        rule_form=rule_form or {"contact_method_id": "", "delay_minutes": "0", "urgency": "any"},
        method_error=method_error,
        rule_error=rule_error,
    )


def _back(person: Person, principal: Principal) -> RedirectResponse:
    suffix = "" if person.id == principal.person_id else f"?person_id={person.id}"
    return RedirectResponse(PAGE + suffix, status_code=303)


@paging.get(PAGE, response_class=HTMLResponse)
def notifications(
    request: Request,
    session: DB,
    principal: CurrentPrincipal,
    person_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return _page(request, session, principal, _person(session, principal, person_id))


def _method_fields(form: FormData) -> dict[str, str]:
    # The secret is never sent back into the page.
    return {"channel": text(form, "channel"), "address": text(form, "address"), "label": text(form, "label")}


@paging.post(PAGE + "/methods")
def add_method(request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, form: RawForm) -> Response:
    person = _person(session, principal, text(form, "person_id"))
    fields = _method_fields(form)
    with change(session) as outcome:
        config = destination_config(fields["channel"], fields["address"], text(form, "secret"))
        body = ContactMethodIn.model_validate(
            {"channel": fields["channel"], "config": config, "label": fields["label"], "person_id": person.id}
        )
        service.add_contact_method(
            session, clock, person_id=person.id, channel=body.channel, config=body.config, label=body.label
        )
    if outcome.error:
        return _page(
            request, session, principal, person, method_form=fields, status=outcome.status, method_error=outcome.error
        )
    return _back(person, principal)


@paging.post(PAGE + "/methods/{method_id}/delete")
def remove_method(session: DB, principal: CurrentPrincipal, method_id: Ident, form: RawForm) -> Response:
    person = _person(session, principal, text(form, "person_id"))
    service.remove_contact_method(session, person_id=person.id, contact_method_id=method_id)
    return _back(person, principal)


@paging.post(PAGE + "/rules")
def add_rule(request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, form: RawForm) -> Response:
    person = _person(session, principal, text(form, "person_id"))
    fields = {name: text(form, name) for name in ("contact_method_id", "delay_minutes", "urgency")}
    with change(session) as outcome:
        body = RuleIn.model_validate({**fields, "person_id": person.id})
        service.add_notification_rule(
            session,
            clock,
            person_id=person.id,
            contact_method_id=body.contact_method_id,
            delay_minutes=body.delay_minutes,
            urgency=body.urgency,
        )
    if outcome.error:
        return _page(
            request, session, principal, person, rule_form=fields, status=outcome.status, rule_error=outcome.error
        )
    return _back(person, principal)


@paging.post(PAGE + "/rules/{rule_id}/delete")
def remove_rule(session: DB, principal: CurrentPrincipal, rule_id: Ident, form: RawForm) -> Response:
    person = _person(session, principal, text(form, "person_id"))
    service.remove_notification_rule(session, person_id=person.id, rule_id=rule_id)
    return _back(person, principal)


OUTBOX_PAGE = "/agent/outbox"


@paging.get(OUTBOX_PAGE, response_class=HTMLResponse)
def outbox_page(
    request: Request,
    session: DB,
    principal: CurrentPrincipal,
    kind: Annotated[str, Query(max_length=64)] = "",
    state: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The one outbox (admins): every message of every kind, newest first, with its delivery state."""
    principal.require_admin()
    chosen = state if state in outbox.STATES else None
    rows = outbox.recent(session, kind=kind.strip() or None, state=chosen, limit=200)
    return render(request, "notify/outbox.html", rows=rows, kind=kind, state=chosen or "", states=outbox.STATES)


router = APIRouter(include_in_schema=False)
router.include_router(paging)
router.include_router(inbox_views.router)
