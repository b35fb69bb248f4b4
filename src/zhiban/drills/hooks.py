"""Drills file their tickets through the desk's own doors: the desk tells them where its API and its inbound
mail listener are."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from zhiban.drills.service import api_url_default, configure_mail, mail_intake_default
from zhiban.drills.service import configure as configure_drills

if TYPE_CHECKING:
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk


def _api_url_from_environment() -> str:
    """A process without a desk (a bare engine worker) files where the environment's desk is served."""
    from zhiban.core.settings import get_settings

    return get_settings().base_url


def _mail_intake(settings: Settings) -> tuple[str, int, str]:
    """The inbound listener as this desk runs it (ZHIBAN_HOST, ZHIBAN_INBOUND_SMTP_PORT) and an address of the desk."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return host, settings.inbound_smtp_port, f"support@{urlsplit(settings.base_url).hostname or 'localhost'}"


def _mail_intake_from_environment() -> tuple[str, int, str]:
    from zhiban.core.settings import get_settings

    return _mail_intake(get_settings())


api_url_default(_api_url_from_environment)
mail_intake_default(_mail_intake_from_environment)


def configure(desk: Desk) -> None:
    configure_drills(api_url=desk.settings.base_url)
    host, port, to = _mail_intake(desk.settings)
    configure_mail(host=host, port=port, to=to)
