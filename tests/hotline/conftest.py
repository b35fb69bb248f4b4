"""The hotline's desk: a Twilio account configured, and a public base URL that is not the host the app sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.hotline.kit import BASE, TWILIO_URL
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk


@pytest.fixture
def desk(engine: Engine, clock: FrozenClock, tmp_path: Path) -> Desk:
    from zhiban.core.settings import Settings

    settings = Settings(
        database_url=str(engine.url),
        var_dir=str(tmp_path / "var"),
        demo=False,
        simulate=False,
        base_url=BASE,
        twilio_url=TWILIO_URL,
    )
    return Desk(settings=settings, clock=clock, engine=engine, secret_key="test-secret-key")
