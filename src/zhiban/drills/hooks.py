"""Drills file their tickets through the desk's own API: the desk tells them where it listens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zhiban.drills.service import api_url_default
from zhiban.drills.service import configure as configure_drills

if TYPE_CHECKING:
    from zhiban.desk import Desk


def _api_url_from_environment() -> str:
    """A process without a desk (a bare engine worker) files where the environment's desk is served."""
    from zhiban.core.settings import get_settings

    return get_settings().base_url


api_url_default(_api_url_from_environment)


def configure(desk: Desk) -> None:
    configure_drills(api_url=desk.settings.base_url)
