"""Status pages take the desk's base URL at start-up (notices and feeds link back to the pages); the
subscription caps are read at each subscription from the environment's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zhiban.core.settings import get_settings
from zhiban.status.service import base_url_default, current_settings
from zhiban.status.service import configure as configure_status

if TYPE_CHECKING:
    from zhiban.desk import Desk


def _base_url_from_environment() -> str:
    """A process without a desk (a bare engine worker) links to the pages the environment names."""
    return get_settings().base_url


base_url_default(_base_url_from_environment)
current_settings.read_from(get_settings)


def configure(desk: Desk) -> None:
    configure_status(base_url=desk.settings.base_url)
