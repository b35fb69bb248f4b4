"""Jinja2 templates with the message catalog and viewer-zone time formatting."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from zhiban.core.i18n import LANGUAGES, translate
from zhiban.core.principal import Principal
from zhiban.web.deps import LANG_COOKIE, viewer_language

_TEMPLATE_DIR = str(resources.files("zhiban.web").joinpath("templates"))
templates = Jinja2Templates(directory=_TEMPLATE_DIR)


def local_time(moment: datetime | None, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC moment shown in the viewer's zone."""
    if moment is None:
        return ""
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone).strftime(fmt)


templates.env.filters["local_time"] = local_time


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page for the viewer: language, zone, CSRF token and `_` for messages."""
    lang = viewer_language(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    tz = principal.timezone if principal else "UTC"

    def _(key: str, **values: Any) -> str:
        return translate(lang, key, **values)

    context.update(
        _=_,
        lang=lang,
        viewer_tz=tz,
        principal=principal,
        csrf_token=getattr(request.state, "csrf_token", ""),
    )
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    if request.query_params.get("lang") in LANGUAGES:
        # The language switch (?lang=) sticks for the pages that follow.
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response
