"""Telemetry reads its ZHIBAN_TELEMETRY_* settings from the environment when a process builds its runtime."""

from __future__ import annotations

from zhiban.telemetry.live import TelemetrySettings, current_settings

current_settings.read_from(TelemetrySettings)
