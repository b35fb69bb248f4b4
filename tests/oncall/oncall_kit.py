"""Shared pieces of the on-call desk tests: a schedule on the tenancy world, an SMTP sink, isolation checks."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.tenancy import World, bearer, build_world
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.identity.model import Principal, Role
from zhiban.oncall import service

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Monday 16 November 2026, 09:00 in Shanghai: the first handoff of the test rotation.
ROTATION_START = datetime(2026, 11, 16, 9, 0, tzinfo=SHANGHAI)


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in Shanghai."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def admin_of(world: World) -> Principal:
    return Principal(person_id=world.admin_id, role=Role.ADMIN, organization_id=None, name="Admin")


def agent_of(world: World) -> Principal:
    return Principal(person_id=world.agent_id, role=Role.AGENT, organization_id=None, name="Agent Wang")


@dataclass
class OnCall:
    world: World
    schedule_id: str


def daily_rotation(desk: Desk, world: World, *, restrictions: tuple[dict[str, Any], ...] = ()) -> OnCall:
    """'Network primary' in Shanghai: the agent and the admin take daily turns from ROTATION_START."""
    with desk.transaction() as s:
        admin = admin_of(world)
        row = service.create_schedule(
            s, desk.clock, admin, name="Network primary", zone="Asia/Shanghai", owner_id=world.admin_id
        )
        service.add_layer(
            s,
            desk.clock,
            admin,
            row.id,
            service.LayerSpec(
                "daily", (world.agent_id, world.admin_id), ROTATION_START, 1, "day", restrictions=restrictions
            ),
        )
        return OnCall(world, row.id)


def no_schedules(client: TestClient, fx: Any, response: Any) -> None:
    """Bob's refused POST made no schedule."""
    listed = client.get("/api/v1/schedules", headers=bearer(fx.world.admin_token))
    assert listed.status_code == 200 and listed.json() == []


def hourly(start: datetime, hours: int) -> Iterator[datetime]:
    for i in range(hours):
        yield (start + timedelta(hours=i, minutes=30)).astimezone(UTC)


@dataclass
class Mailbox:
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """A real local SMTP server, set as the desk's ZHIBAN_SMTP_URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("ZHIBAN_SMTP_URL", f"smtp://127.0.0.1:{port}?from=desk@vendor.test")
    get_settings.cache_clear()
    yield box
    controller.stop()
    get_settings.cache_clear()


__all__ = ["Mailbox", "OnCall", "build_world", "daily_rotation", "smtp"]
