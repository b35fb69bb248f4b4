"""Fault specs for the demo path: `kind:app:slice:start:duration[:magnitude]`, as `zhiban simulate --fault`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from zhiban.core.errors import InvalidInput


def parse_fault_spec(spec: str, now: datetime) -> Any:
    """A simulator Fault from its spec (start `+1m` is relative to `now`); bad specs raise InvalidInput."""
    import typer

    from zhiban.telemetry.cli import parse_fault

    try:
        return parse_fault(spec.strip(), now)
    except typer.BadParameter as exc:
        raise InvalidInput(str(exc.message)) from exc
