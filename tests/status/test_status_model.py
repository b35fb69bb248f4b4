"""Status page model: uptime bars in the viewer's zone, current incidents, history, visibility."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.status.model import (
    StatusIncident,
    StatusUpdate,
    current_incidents,
    daily_uptime,
    history,
    incidents_affecting,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def inc(
    incident_id: str,
    start: datetime,
    end: datetime | None,
    severity: str = "critical",
    components: tuple[str, ...] = ("media",),
    orgs: frozenset[str] = frozenset(),
    updates: tuple[StatusUpdate, ...] = (),
) -> StatusIncident:
    return StatusIncident(incident_id, f"incident {incident_id}", severity, components, start, end, updates, orgs)


# 23:00 on Fri 9 Oct to 01:00 on Sat 10 Oct in Shanghai (UTC+8) = 15:00-17:00 UTC on 9 Oct.
ACROSS_MIDNIGHT = inc("INC-1", utc(2026, 10, 9, 15), utc(2026, 10, 9, 17))
NOW = utc(2026, 10, 12, 4)  # 12:00 on Mon 12 Oct in Shanghai


def test_an_incident_across_local_midnight_splits_over_two_bars() -> None:
    chart = daily_uptime([ACROSS_MIDNIGHT], now=NOW, tz="Asia/Shanghai", days=5)
    assert [b.day for b in chart.bars] == [date(2026, 10, d) for d in (8, 9, 10, 11, 12)]
    by_day = {b.day.day: b for b in chart.bars}
    # 60 min of a 1,440-min day on each side of midnight: 100 × (1 − 60 / 1440) = 95.833 %.
    assert by_day[9].uptime_pct == pytest.approx(100 * (1 - 60 / 1440))
    assert by_day[10].uptime_pct == pytest.approx(100 * (1 - 60 / 1440))
    assert (by_day[9].worst_severity, by_day[10].incident_ids) == ("critical", ("INC-1",))
    assert (by_day[8].uptime_pct, by_day[8].worst_severity, by_day[8].incident_ids) == (100.0, "none", ())
    # Today is measured only up to 12:00; nothing happened, so 100 %.
    assert by_day[12].uptime_pct == 100.0
    # Over the period: 120 min down of 4 × 1440 + 720 = 6,480 min measured.
    assert chart.uptime_pct == pytest.approx(100 * (1 - 120 / 6480))


def test_the_same_incident_is_one_day_for_a_utc_viewer() -> None:
    chart = daily_uptime([ACROSS_MIDNIGHT], now=NOW, tz="UTC", days=4)
    by_day = {b.day.day: b for b in chart.bars}
    assert by_day[9].uptime_pct == pytest.approx(100 * (1 - 120 / 1440))
    assert (by_day[10].uptime_pct, by_day[10].incident_ids) == (100.0, ())


def test_overlapping_incidents_count_the_worst_weight_once() -> None:
    # Partial outage (major, weight 0.3) 10:00-12:00 UTC, major outage (critical, weight 1) 11:00-11:30:
    # 30 min × 1 + 90 min × 0.3 = 57 min down → 100 × (1 − 57 / 1440).
    incidents = [
        inc("A", utc(2026, 10, 3, 10), utc(2026, 10, 3, 12), "major"),
        inc("B", utc(2026, 10, 3, 11), utc(2026, 10, 3, 11, 30), "critical"),
        inc("C", utc(2026, 10, 3, 14), utc(2026, 10, 3, 15), "minor"),  # degraded: no downtime
    ]
    chart = daily_uptime(incidents, now=utc(2026, 10, 4, 12), tz="UTC", days=2)
    bar = chart.bars[0]
    assert bar.day == date(2026, 10, 3)
    assert bar.uptime_pct == pytest.approx(100 * (1 - 57 / 1440))
    assert (bar.worst_severity, bar.incident_ids) == ("critical", ("A", "B", "C"))


def test_an_open_incident_runs_until_now() -> None:
    # Started 04:00, still open at 06:00 local: 2 h down of 6 h measured today.
    now = utc(2026, 10, 12, 22)  # 06:00 on 13 Oct in Shanghai
    chart = daily_uptime([inc("X", utc(2026, 10, 12, 20), None)], now=now, tz="Asia/Shanghai", days=1)
    assert chart.bars[0].day == date(2026, 10, 13)
    assert chart.bars[0].uptime_pct == pytest.approx(100 * (1 - 2 / 6))


def test_a_daylight_saving_day_has_25_hours() -> None:
    # London falls back on Sun 25 Oct 2026: the local day lasts 1,500 min; a 60-min outage → 96 %.
    chart = daily_uptime(
        [inc("D", utc(2026, 10, 25, 12), utc(2026, 10, 25, 13))], now=utc(2026, 10, 26, 12), tz="Europe/London", days=2
    )
    assert chart.bars[0].day == date(2026, 10, 25)
    assert chart.bars[0].uptime_pct == pytest.approx(96.0)


def test_ninety_bars_by_default_and_bounded() -> None:
    assert len(daily_uptime([], now=NOW, tz="UTC").bars) == 90
    with pytest.raises(InvalidInput):
        daily_uptime([], now=NOW, tz="UTC", days=0)
    with pytest.raises(InvalidInput):
        daily_uptime([], now=NOW, tz="Nowhere/Land")


def test_current_incidents_worst_first_then_newest() -> None:
    t = utc(2026, 10, 12, 10)
    updates = (
        StatusUpdate(t + timedelta(minutes=5), "investigating", "Looking into it"),
        StatusUpdate(t + timedelta(minutes=40), "monitoring", "Fix deployed"),
        StatusUpdate(t + timedelta(minutes=20), "identified", "Edge node sh-edge-07"),
    )
    incidents = [
        inc("old-critical", t, None, "critical", updates=updates),
        inc("minor", t + timedelta(hours=1), None, "minor"),
        inc("new-critical", t + timedelta(hours=1, minutes=30), None, "critical"),
        inc("resolved", t, t + timedelta(minutes=30), "major"),
        inc("future", t + timedelta(hours=5), None, "critical"),
    ]
    now = t + timedelta(hours=2)
    assert [i.incident_id for i in current_incidents(incidents, now)] == ["new-critical", "old-critical", "minor"]
    newest_first = incidents[0].updates_newest_first()
    assert [u.status for u in newest_first] == ["monitoring", "identified", "investigating"]
    assert incidents[0].last_changed() == t + timedelta(minutes=40)


def test_history_lists_every_day_today_first() -> None:
    days = history([ACROSS_MIDNIGHT], now=NOW, tz="Asia/Shanghai")
    assert len(days) == 90
    assert days[0].day == date(2026, 10, 12)
    assert days[-1].day == date(2026, 10, 12) - timedelta(days=89)
    # Started 23:00 on 9 Oct local: listed on the 9th only.
    listed = {d.day: [i.incident_id for i in d.incidents] for d in days if d.incidents}
    assert listed == {date(2026, 10, 9): ["INC-1"]}


def test_private_incidents_show_only_to_their_organization() -> None:
    public = inc("pub", NOW, None, components=("media", "signaling"))
    private = inc("priv", NOW, None, orgs=frozenset({"org-live"}))
    other = inc("chat", NOW, None, components=("chat",))
    assert [i.incident_id for i in incidents_affecting([public, private, other], "media")] == ["pub"]
    assert [i.incident_id for i in incidents_affecting([public, private, other], "media", "org-live")] == [
        "pub",
        "priv",
    ]
    assert [i.incident_id for i in incidents_affecting([public, private, other], None, "org-x")] == ["pub", "chat"]


def test_bad_incidents_are_refused() -> None:
    with pytest.raises(InvalidInput):
        inc("x", NOW, NOW - timedelta(minutes=1))
    with pytest.raises(InvalidInput):
        inc("x", NOW, None, severity="apocalyptic")
    with pytest.raises(InvalidInput):
        StatusUpdate(NOW, "panicking", "…")
