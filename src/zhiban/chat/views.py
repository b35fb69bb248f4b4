"""The chat groups page for admins: each platform's app (which secrets are set), the bound groups with a form to
bind and a button to unbind, and the last events acted on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from zhiban.chat import service
from zhiban.identity.model import Principal
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.forms import RawForm, change, text
from zhiban.web.scopes import needs
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[needs("admin")])
PAGE = "/agent/chat"
SECRETS = ("signing_secret", "bot_token", "app_secret", "verification_token", "encrypt_key")


def _page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    apps = [(row, [name for name in SECRETS if getattr(row, name)]) for row in service.apps(session, principal)]
    return render(
        request,
        "chat/groups.html",
        status,
        apps=apps,
        groups=service.groups(session, principal),
        events=service.recent_events(session, principal, limit=30),
        form=form or {"platform": "slack", "group_id": "", "organization": "", "requester": "", "name": ""},
        error=error,
    )


@router.get(PAGE, response_class=HTMLResponse)
def groups_page(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    return _page(request, session, principal)


@router.post(PAGE + "/groups")
def bind(request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, form: RawForm) -> Response:
    fields = {name: text(form, name)[:254] for name in ("platform", "group_id", "organization", "requester", "name")}
    with change(session) as outcome:
        service.bind_group(
            session,
            clock,
            principal,
            platform=fields["platform"],
            group_id=fields["group_id"],
            organization=fields["organization"],
            requester=fields["requester"] or None,
            name=fields["name"],
        )
    if outcome.error:
        return _page(request, session, principal, form=fields, error=outcome.error, status=outcome.status)
    return RedirectResponse(PAGE, status_code=303)


@router.post(PAGE + "/groups/{group_id}/unbind")
def unbind(
    group_id: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")],
    session: DB,
    principal: CurrentPrincipal,
) -> Response:
    service.unbind_group(session, principal, group_id)
    return RedirectResponse(PAGE, status_code=303)
