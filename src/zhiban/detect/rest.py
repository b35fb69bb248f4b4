"""Rest after an alarm: report nothing while a raw score in the last few rows reached the alarm level.

After CAD OSE's rule. The rest is counted from every high raw score, reported or not: a series that
keeps scoring high is one long event, so it is reported once, at its start. NAB rewards the
earliest detection in a window and charges every later false positive; a pager wants one alert
per incident for the same reason.
"""

from __future__ import annotations


class AlarmRest:
    """`report(row, raw)` returns raw, or 0 while resting."""

    def __init__(self, rows: int, level: float) -> None:
        self.rows = rows
        self.level = level
        self.last_high = -(10**18)  # row of the last raw score at or above `level`

    def resting(self, row: int) -> bool:
        """Whether a raw score at `level` came within the `rows` rows before `row`."""
        return row - self.last_high <= self.rows

    def report(self, row: int, raw: float) -> float:
        """The score to report for this row's raw score; a high raw score (re)starts the rest."""
        score = 0.0 if self.resting(row) else raw
        if raw >= self.level:
            self.last_high = row
        return score
