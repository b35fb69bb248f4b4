"""On-call schedules: layers, rotations, restrictions, overrides, who is on call, iCal feeds."""

from zhiban.oncall.model import (
    DailyWindow,
    Layer,
    Override,
    Schedule,
    Shift,
    ShiftSource,
    TurnUnit,
    WeeklyWindow,
)
from zhiban.oncall.schedule import gaps, layer_shifts, person_shifts, restriction_windows, shifts, who_is_on_call

__all__ = [
    "DailyWindow",
    "Layer",
    "Override",
    "Schedule",
    "Shift",
    "ShiftSource",
    "TurnUnit",
    "WeeklyWindow",
    "gaps",
    "layer_shifts",
    "person_shifts",
    "restriction_windows",
    "shifts",
    "who_is_on_call",
]
