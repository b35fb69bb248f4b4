"""Escalation policies as pure plans: who is paged at which step, and when.

Nothing here reads a clock or a database: schedules, teams, business hours and support hours come
in as callables, so a durable timer can call `next_step` each time a step fires and always plan
from the current state of schedules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import quote

from zhiban.core.errors import InvalidInput
from zhiban.oncall.model import DailyWindow, Restriction, WeeklyWindow, require_aware, window_contains, zone_of

MAX_LEVELS = 20
MAX_TARGETS_PER_LEVEL = 50
MAX_PEOPLE_PER_STEP = 200
MAX_REPEATS = 9
MAX_DELAY_MINUTES = 24 * 60
MAX_CONDITION_WINDOWS = 20
MAX_REF_LENGTH = 200
SUPPORT_HOURS_HORIZON = timedelta(days=35)
SUPPORT_HOURS_PROBE = timedelta(minutes=15)


class Urgency(StrEnum):
    """High pages at once; low waits for support hours."""

    HIGH = "high"
    LOW = "low"


class TargetKind(StrEnum):
    PERSON = "person"
    SCHEDULE = "schedule"
    TEAM = "team"


def _require_ref(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_REF_LENGTH:
        raise InvalidInput(f"{what} must be a non-empty string of at most {MAX_REF_LENGTH} characters")
    return value


@dataclass(frozen=True)
class Target:
    """Whom a level pages. A team with `round_robin` pages one member per pass, in turn; otherwise all."""

    kind: TargetKind
    ref: str
    round_robin: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", TargetKind(self.kind))
        except ValueError as exc:
            raise InvalidInput(f"target kind must be one of {[k.value for k in TargetKind]}") from exc
        _require_ref(self.ref, "target ref")
        if self.round_robin and self.kind is not TargetKind.TEAM:
            raise InvalidInput("round robin applies to team targets only")


@dataclass(frozen=True)
class LevelCondition:
    """When a level applies: inside any of `windows` (read in `zone`) and, if set, in or out of business hours.

    A level whose condition does not hold when it comes due is skipped without waiting.
    """

    zone: str = "UTC"
    windows: tuple[Restriction, ...] = ()
    business_hours: bool | None = None

    def __post_init__(self) -> None:
        zone_of(self.zone)
        object.__setattr__(self, "windows", tuple(self.windows))
        if len(self.windows) > MAX_CONDITION_WINDOWS:
            raise InvalidInput(f"a condition has at most {MAX_CONDITION_WINDOWS} windows")
        for window in self.windows:
            if not isinstance(window, DailyWindow | WeeklyWindow):
                raise InvalidInput("condition windows must be DailyWindow or WeeklyWindow values")

    def holds(self, moment: datetime, is_business_time: Callable[[datetime], bool] | None) -> bool:
        """True when the level applies at `moment`."""
        zone = zone_of(self.zone)
        if self.windows and not any(window_contains(w, moment, zone) for w in self.windows):
            return False
        if self.business_hours is None:
            return True
        if is_business_time is None:
            raise InvalidInput("this policy has a business-hours condition: pass is_business_time")
        return is_business_time(moment) == self.business_hours


@dataclass(frozen=True)
class EscalationLevel:
    """Targets paged together; after `delay_minutes` without acknowledgement the next level is paged."""

    targets: tuple[Target, ...]
    delay_minutes: int
    condition: LevelCondition | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if not 1 <= len(self.targets) <= MAX_TARGETS_PER_LEVEL:
            raise InvalidInput(f"a level has 1 to {MAX_TARGETS_PER_LEVEL} targets")
        for target in self.targets:
            if not isinstance(target, Target):
                raise InvalidInput("level targets must be Target values")
        if not isinstance(self.delay_minutes, int) or not 1 <= self.delay_minutes <= MAX_DELAY_MINUTES:
            raise InvalidInput(f"a level's delay is 1 to {MAX_DELAY_MINUTES} minutes")


@dataclass(frozen=True)
class EscalationPolicy:
    """Ordered levels, run once and then `repeats` more times while no one acknowledges."""

    id: str
    levels: tuple[EscalationLevel, ...]
    repeats: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        _require_ref(self.id, "policy id")
        object.__setattr__(self, "levels", tuple(self.levels))
        if not 1 <= len(self.levels) <= MAX_LEVELS:
            raise InvalidInput(f"a policy has 1 to {MAX_LEVELS} levels")
        for level in self.levels:
            if not isinstance(level, EscalationLevel):
                raise InvalidInput("policy levels must be EscalationLevel values")
        if not isinstance(self.repeats, int) or not 0 <= self.repeats <= MAX_REPEATS:
            raise InvalidInput(f"a policy repeats 0 to {MAX_REPEATS} times")


@dataclass(frozen=True)
class EscalationStep:
    """Step `step_no` pages `targets` (person ids) of level `level_index` in pass `repeat` at `due_at`."""

    step_no: int
    level_index: int
    repeat: int
    due_at: datetime
    targets: tuple[str, ...]


ResolveTargets = Callable[[Target, datetime], Sequence[str]]
"""Person ids behind a target at a moment: itself, who is on call on a schedule, a team's members in order."""


def next_time_when(
    predicate: Callable[[datetime], bool],
    after: datetime,
    horizon: timedelta = SUPPORT_HOURS_HORIZON,
    probe: timedelta = SUPPORT_HOURS_PROBE,
) -> datetime | None:
    """The first moment at or after `after` when `predicate` holds, to the second, or None within `horizon`.

    It probes every `probe` and then bisects, so spans shorter than `probe` may be missed.
    """
    start = require_aware(after, "after")
    if predicate(start):
        return start
    # Whole seconds past the start, so that boundaries on the minute are found exactly.
    grid = start.replace(microsecond=0) + timedelta(seconds=1) if start.microsecond else start
    if grid != start and predicate(grid):
        return grid
    step = max(1, int(probe.total_seconds()))
    limit = int(horizon.total_seconds())
    last_false = 0
    for offset in range(step, limit + step, step):
        if predicate(grid + timedelta(seconds=offset)):
            low, high = last_false, offset  # predicate false at low (or before grid), true at high
            while high - low > 1:
                middle = (low + high) // 2
                if predicate(grid + timedelta(seconds=middle)):
                    high = middle
                else:
                    low = middle
            return grid + timedelta(seconds=high)
        last_false = offset
    return None


def rotation_of(incident_number: int) -> int:
    """Where a team round robin starts for an incident: its number, so consecutive incidents take turns."""
    return incident_number % 1_000_000


def _people(
    level: EscalationLevel, due_at: datetime, repeat: int, resolve_targets: ResolveTargets, round_robin_offset: int
) -> tuple[str, ...]:
    people: list[str] = []
    for target in level.targets:
        resolved = list(resolve_targets(target, due_at))
        if len(resolved) > MAX_PEOPLE_PER_STEP:
            raise InvalidInput(f"target {target.ref!r} resolves to more than {MAX_PEOPLE_PER_STEP} people")
        found = [_require_ref(p, "resolved person id") for p in resolved]
        if target.round_robin and found:
            found = [found[(round_robin_offset + repeat) % len(found)]]
        people.extend(p for p in found if p not in people)
    if len(people) > MAX_PEOPLE_PER_STEP:
        raise InvalidInput(f"an escalation step pages at most {MAX_PEOPLE_PER_STEP} people")
    return tuple(people)


def next_step(
    policy: EscalationPolicy,
    previous: EscalationStep | None,
    triggered_at: datetime,
    urgency: Urgency,
    resolve_targets: ResolveTargets,
    is_support_hours: Callable[[datetime], bool] | None = None,
    *,
    is_business_time: Callable[[datetime], bool] | None = None,
    round_robin_offset: int = 0,
) -> EscalationStep | None:
    """The step after `previous` (the first when None), or None when the policy is exhausted.

    Levels whose condition fails or whose targets resolve to nobody are skipped without waiting.
    Low urgency moves every page into support hours; delays count from the page actually sent.
    """
    try:
        urgency = Urgency(urgency)
    except ValueError as exc:
        raise InvalidInput(f"urgency must be one of {[u.value for u in Urgency]}") from exc
    if urgency is Urgency.LOW and is_support_hours is None:
        raise InvalidInput("a low-urgency escalation needs is_support_hours")
    if previous is None:
        level_index, repeat, due_at, step_no = 0, 0, require_aware(triggered_at, "triggered_at"), 0
    else:
        if not 0 <= previous.level_index < len(policy.levels):
            raise InvalidInput("the previous step does not belong to this policy")
        delay = timedelta(minutes=policy.levels[previous.level_index].delay_minutes)
        level_index, repeat = previous.level_index + 1, previous.repeat
        due_at, step_no = require_aware(previous.due_at, "previous due_at") + delay, previous.step_no + 1
    while True:
        if level_index == len(policy.levels):
            level_index, repeat = 0, repeat + 1
        if repeat > policy.repeats:
            return None
        if urgency is Urgency.LOW and is_support_hours is not None:
            in_hours = next_time_when(is_support_hours, due_at)
            if in_hours is None:
                return None
            due_at = in_hours
        level = policy.levels[level_index]
        if level.condition is None or level.condition.holds(due_at, is_business_time):
            people = _people(level, due_at, repeat, resolve_targets, round_robin_offset)
            if people:
                return EscalationStep(step_no, level_index, repeat, due_at, people)
        level_index += 1


def plan_escalation(
    policy: EscalationPolicy,
    triggered_at: datetime,
    urgency: Urgency,
    resolve_targets: ResolveTargets,
    is_support_hours: Callable[[datetime], bool] | None = None,
    *,
    is_business_time: Callable[[datetime], bool] | None = None,
    round_robin_offset: int = 0,
) -> list[EscalationStep]:
    """Every step of the policy if no one acknowledges: the whole plan, as `next_step` would fire it."""
    plan: list[EscalationStep] = []
    step = next_step(
        policy,
        None,
        triggered_at,
        urgency,
        resolve_targets,
        is_support_hours,
        is_business_time=is_business_time,
        round_robin_offset=round_robin_offset,
    )
    while step is not None:
        plan.append(step)
        step = next_step(
            policy,
            step,
            triggered_at,
            urgency,
            resolve_targets,
            is_support_hours,
            is_business_time=is_business_time,
            round_robin_offset=round_robin_offset,
        )
    return plan


def step_key(incident_id: str, step_no: int, target: str, attempt: int) -> str:
    """The idempotency key of one page: incident × step × target × attempt (readable, injective)."""
    _require_ref(incident_id, "incident id")
    _require_ref(target, "target")
    for number, what in ((step_no, "step_no"), (attempt, "attempt")):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise InvalidInput(f"{what} must be a non-negative integer")
    # Quoting every ':' inside the parts keeps distinct tuples from sharing a key.
    return f"esc:{quote(incident_id, safe='')}:{step_no}:{quote(target, safe='')}:{attempt}"
