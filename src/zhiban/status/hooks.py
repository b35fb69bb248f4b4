"""Status pages take the desk's base URL at start-up: notices and feeds link back to the pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zhiban.desk import Desk


def configure(desk: Desk) -> None:
    from zhiban.status.service import configure as configure_status

    configure_status(base_url=desk.settings.base_url)
