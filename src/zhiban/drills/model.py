"""Drills in the domain, pure: when "Sunday 03:00" next comes in a zone, and what a drill's run proves.

A drill passes when its ticket paged the engineer on duty within PAGE_WITHIN, the page was acknowledged and
the ticket got its first public reply within the plan's P1 first-response target, and nothing broke on the way
(someone was on call, every page went out, the ticket reached the expected team, an SLA clock started). A
failed drill names the first step that broke: no page, no acknowledgement, or no reply in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zhiban.core.errors import InvalidInput

MAX_WINDOW_MINUTES = 24 * 60
MAX_AHEAD = timedelta(days=366)
MAX_PROBLEMS = 50

_WEEKDAYS = {
    "monday": 0, "mon": 0, "周一": 0, "星期一": 0,
    "tuesday": 1, "tue": 1, "tues": 1, "周二": 1, "星期二": 1,
    "wednesday": 2, "wed": 2, "周三": 2, "星期三": 2,
    "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "周四": 3, "星期四": 3,
    "friday": 4, "fri": 4, "周五": 4, "星期五": 4,
    "saturday": 5, "sat": 5, "周六": 5, "星期六": 5,
    "sunday": 6, "sun": 6, "周日": 6, "周天": 6, "星期日": 6, "星期天": 6,
}  # fmt: skip
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or InvalidInput."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}") from exc


def _clock_time(text: str) -> time:
    match = _TIME.match(text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise InvalidInput(f"a drill time is HH:MM (24 h), not {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tz)


def next_occurrence(spec: str, now: datetime, tz: str) -> datetime:
    """The next moment after `now` matching "Sunday 03:00", "周日 03:00", "03:00" or "2026-11-22 03:00" in `tz`."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    words = spec.strip().replace("T", " ").split()
    if not 1 <= len(words) <= 2 or len(spec) > 100:
        raise InvalidInput(f'say when as "Sunday 03:00", "03:00" or "2026-11-22 03:00", not {spec!r}')
    place = zone(tz)
    local_now = now.astimezone(place)
    at = _clock_time(words[-1])
    if len(words) == 1:
        candidate = _local(local_now.date(), at, place)
        if candidate <= now:
            candidate = _local(local_now.date() + timedelta(days=1), at, place)
        return candidate
    first = words[0]
    match = _DATE.match(first)
    if match:
        try:
            day = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError as exc:
            raise InvalidInput(f"no such date {first!r}") from exc
        candidate = _local(day, at, place)
        if candidate <= now:
            raise InvalidInput(f"{spec!r} in {tz} is in the past")
        if candidate - now > MAX_AHEAD:
            raise InvalidInput("a drill is scheduled at most a year ahead")
        return candidate
    weekday = _WEEKDAYS.get(first.lower())
    if weekday is None:
        raise InvalidInput(f"unknown weekday {first!r}; use Monday..Sunday (or 周一..周日)")
    ahead = (weekday - local_now.weekday()) % 7
    candidate = _local(local_now.date() + timedelta(days=ahead), at, place)
    if candidate <= now:
        candidate = _local(local_now.date() + timedelta(days=ahead + 7), at, place)
    return candidate


CHANNELS = ("api", "email")  # the customer's doors a drill may file through


def intake_channel(value: str) -> str:
    """A drill's intake channel ("api" or "email"), or InvalidInput."""
    channel = value.strip().lower()
    if channel not in CHANNELS:
        raise InvalidInput(f"a drill files through one of {', '.join(CHANNELS)}, not {value[:20]!r}")
    return channel


_FILED = re.compile(r"\(ticket #(\d{1,12})\)")


def ticket_of_smtp_answer(code: int, text: str) -> int | str:
    """What the desk's inbound listener said of a drill's mail: the ticket it filed, or why the intake failed.

    The listener answers "250 2.0.0 created (ticket #12)" (or "duplicate (ticket #12)" to a repeat); anything else
    is the intake broken: held for an agent (the mail was not taken as the drill's), refused, or deferred.
    """
    line = " ".join(text.split())[:200]
    match = _FILED.search(line) if code == 250 else None
    if match is not None:
        return int(match.group(1))
    if code == 250 and "held" in line:
        return f"intake failed: the desk held the drill's mail for an agent ({line})"
    return f"intake failed: the inbound mail listener answered {code} {line}"


PAGE_WITHIN = timedelta(minutes=5)  # a ticket that should wake someone pages in seconds; 5 min is broken


@dataclass(frozen=True, slots=True)
class Observation:
    """What the tables say happened during one drill's window."""

    ended_at: datetime
    target: timedelta | None  # the plan's P1 first-response target; None when the plan has none
    ticket_created_at: datetime | None
    paged_at: datetime | None  # the ticket's first on-duty page
    acknowledged_at: datetime | None  # the first acknowledgement of that page
    first_response_at: datetime | None
    ticket_team: str | None
    expected_team: str | None
    sla_clock_started: bool
    incident_team: str | None
    pages_sent: int
    page_failures: tuple[str, ...] = ()  # "sms: 503 from provider"
    nobody_on_call: bool = False
    timeline_problems: tuple[str, ...] = ()  # e.g. "the service has no escalation policy"
    page_within: timedelta = PAGE_WITHIN


@dataclass(frozen=True, slots=True)
class Check:
    """One timed step of the chain against its target."""

    name: str  # "page" | "acknowledge" | "first_response"
    team: str | None
    target_seconds: float | None
    actual_seconds: float | None
    passed: bool


@dataclass(frozen=True, slots=True)
class DrillResult:
    passed: bool
    checks: tuple[Check, ...]
    problems: tuple[str, ...]
    teams: dict[str, dict[str, float | None]] = field(default_factory=dict)
    broke: str | None = None  # the first step that failed: "page" | "acknowledge" | "first_response"

    def to_json(self) -> dict[str, object]:
        """As stored in the drill row."""
        return {
            "passed": self.passed,
            "broke": self.broke,
            "checks": [
                {
                    "name": c.name,
                    "team": c.team,
                    "target_seconds": c.target_seconds,
                    "actual_seconds": c.actual_seconds,
                    "passed": c.passed,
                }
                for c in self.checks
            ],
            "problems": list(self.problems),
            "teams": self.teams,
        }


def _timed(
    name: str, team: str | None, start: datetime | None, done: datetime | None, target: timedelta | None
) -> Check:
    actual = (done - start).total_seconds() if start is not None and done is not None else None
    limit = target.total_seconds() if target is not None else None
    passed = actual is not None and (limit is None or actual <= limit)
    return Check(name, team, limit, actual, passed)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


_STEP_TEXT = {
    "page": "no page within {limit} of the ticket",
    "acknowledge": "no acknowledgement within {limit} of the page",
    "first_response": "no public reply within {limit} of the ticket",
}


def _broke(check: Check) -> str:
    """What a failed step says: "no page within 5 min of the ticket (paged after 7 min)"."""
    text = _STEP_TEXT[check.name].format(limit=_minutes(check.target_seconds) if check.target_seconds else "the window")
    if check.actual_seconds is not None:
        return f"{text} (after {_minutes(check.actual_seconds)})"
    return text


def evaluate(obs: Observation) -> DrillResult:
    """Pass or fail, which step broke first, the times per team, and every problem seen, from one observation."""
    page = _timed("page", obs.incident_team, obs.ticket_created_at, obs.paged_at, obs.page_within)
    ack = _timed("acknowledge", obs.incident_team, obs.paged_at, obs.acknowledged_at, obs.target)
    reply = _timed("first_response", obs.ticket_team, obs.ticket_created_at, obs.first_response_at, obs.target)
    checks = (page, ack, reply)
    failed = next((c for c in checks if not c.passed), None)
    problems: list[str] = []
    if obs.ticket_created_at is None:
        problems.append("no ticket was filed")
    elif failed is not None:
        problems.append(_broke(failed))
    if obs.nobody_on_call:
        problems.append("nobody on call: the escalation policy paged nobody")
    problems.extend(f"channel failing: {failure}" for failure in obs.page_failures)
    if obs.paged_at is not None and obs.pages_sent == 0 and not obs.nobody_on_call:
        problems.append("no page was delivered")
    problems.extend(obs.timeline_problems)
    if obs.ticket_created_at is not None:
        if obs.ticket_team is None:
            problems.append("rule misrouted: the ticket reached no team")
        elif obs.expected_team and obs.ticket_team.casefold() != obs.expected_team.casefold():
            problems.append(f"rule misrouted: the ticket went to {obs.ticket_team}, expected {obs.expected_team}")
        if not obs.sla_clock_started:
            problems.append("no SLA clock started for the ticket")
    if obs.target is None:
        problems.append("the plan has no P1 first-response target to measure against")
    teams: dict[str, dict[str, float | None]] = {}
    for check in checks:
        row = teams.setdefault(check.team or "—", {"page": None, "acknowledge": None, "first_response": None})
        row[check.name] = check.actual_seconds
    bounded = tuple(dict.fromkeys(problems))[:MAX_PROBLEMS]
    broke = failed.name if failed is not None else None
    return DrillResult(failed is None and not bounded, checks, bounded, teams, broke)
