"""Status pages take the desk's base URL at start-up: notices and feeds link back to the pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zhiban.status.service import base_url_default
from zhiban.status.service import configure as configure_status

if TYPE_CHECKING:
    from zhiban.desk import Desk


def _base_url_from_environment() -> str:
    """A process without a desk (a bare engine worker) links to the pages the environment names."""
    from zhiban.core.settings import get_settings

    return get_settings().base_url


base_url_default(_base_url_from_environment)


def configure(desk: Desk) -> None:
    configure_status(base_url=desk.settings.base_url)
