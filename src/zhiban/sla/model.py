"""The SLA model: targets, policies, and clocks computed by replaying a ticket's event log. Pure: no I/O.

Rules (what an agent sees on the clock):

- first_response runs from creation until the first public agent reply.
- next_response: once the first response is done, a public customer message that finds nobody already
  waiting opens a new cycle; the next public agent reply fulfils it.
- periodic_update (where the plan has one, e.g. Enterprise P1): a cycle runs from creation, and restarts
  at every public agent reply, while the ticket is unsolved.
- resolution runs from creation until solved; a customer reply reopens a solved ticket and the same
  resolution clock goes on from the business time already used.
- pending (waiting on the customer) pauses every clock; on_hold (a third party) pauses none, since the
  customer is still waiting. A public customer message on a pending ticket makes it open again.
- solved fulfils all running cycles (the solution is the answer); closed ends everything for good.
- A priority, plan, policy or calendar change re-targets running clocks: business time already used is
  kept, a breach is never undone, and a clock that has no target any more is dropped (unless breached).
  A target that starts to apply counts from the moment of the change.
- A target is met when fulfilled at or before its due time; breached_at is the due time it passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from zhiban.calendars.model import BusinessCalendar
from zhiban.core.errors import InvalidInput

# Defined once, by tickets; re-exported, since the SLA's rules are written in them.
from zhiban.tickets.model import Priority as Priority
from zhiban.tickets.model import Status as Status

MAX_EVENTS = 10_000
CALENDAR_24X7 = "24x7"
CALENDAR_BUSINESS = "business"
DEFAULT_WARNING_FRACTION = 0.75
_ZERO = timedelta(0)


class Metric(StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    PERIODIC_UPDATE = "periodic_update"
    RESOLUTION = "resolution"


METRIC_ORDER = tuple(Metric)


class ClockState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FULFILLED = "fulfilled"
    BREACHED = "breached"


@dataclass(frozen=True, slots=True)
class Target:
    """One promise: `metric` within `duration` of time counted on the "24x7" or the "business" calendar."""

    metric: Metric
    duration: timedelta
    calendar: str = CALENDAR_BUSINESS

    def __post_init__(self) -> None:
        if self.duration <= _ZERO or self.duration > timedelta(days=366):
            raise InvalidInput(f"target duration must be positive and at most a year, not {self.duration}")
        if self.calendar not in (CALENDAR_24X7, CALENDAR_BUSINESS):
            raise InvalidInput(f"target calendar must be {CALENDAR_24X7!r} or {CALENDAR_BUSINESS!r}")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """Targets for tickets matching plan and priority, optionally channel and category (None = any)."""

    plan: str | None
    priority: Priority | None
    targets: tuple[Target, ...]
    channel: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        metrics = [t.metric for t in self.targets]
        if len(set(metrics)) != len(metrics):
            raise InvalidInput("a rule has at most one target per metric")

    def matches(self, plan: str, priority: Priority, channel: str | None, category: str | None) -> bool:
        """Whether a ticket with these attributes falls under this rule."""
        return (
            (self.plan is None or self.plan == plan)
            and (self.priority is None or self.priority == priority)
            and (self.channel is None or self.channel == channel)
            and (self.category is None or self.category == category)
        )


@dataclass(frozen=True)
class Policy:
    """Ordered rules; the first rule that matches a ticket gives all its targets."""

    name: str
    rules: tuple[PolicyRule, ...]
    _memo: dict[tuple[str, Priority, str | None, str | None], dict[Metric, Target]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def targets_for(
        self, plan: str, priority: Priority, channel: str | None = None, category: str | None = None
    ) -> dict[Metric, Target]:
        """The targets of the first matching rule (none if no rule matches)."""
        key = (plan, priority, channel, category)
        found = self._memo.get(key)
        if found is None:
            found = next(
                ({t.metric: t for t in rule.targets} for rule in self.rules if rule.matches(*key)),
                {},
            )
            if len(self._memo) < 10_000:  # bounded: keys come from ticket attributes
                self._memo[key] = found
        return dict(found)


# -- events ---------------------------------------------------------------------------------------------


def _coerce(event: object, name: str, kind: type[StrEnum]) -> None:
    """Accept enum values given as plain strings; refuse unknown ones clearly."""
    value = getattr(event, name)
    try:
        object.__setattr__(event, name, kind(value))
    except ValueError as exc:
        allowed = ", ".join(str(k.value) for k in kind)
        raise InvalidInput(f"{name} must be one of {allowed}, not {value!r}") from exc


@dataclass(frozen=True, slots=True)
class TicketCreated:
    at: datetime
    priority: Priority
    plan: str
    channel: str | None = None
    category: str | None = None
    policy: str = "default"
    business_calendar: str = CALENDAR_BUSINESS

    def __post_init__(self) -> None:
        _coerce(self, "priority", Priority)


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    at: datetime
    public: bool = True


@dataclass(frozen=True, slots=True)
class AgentReply:
    at: datetime
    public: bool = True


@dataclass(frozen=True, slots=True)
class StatusChanged:
    at: datetime
    to: Status

    def __post_init__(self) -> None:
        _coerce(self, "to", Status)


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    at: datetime
    to: Priority

    def __post_init__(self) -> None:
        _coerce(self, "to", Priority)


@dataclass(frozen=True, slots=True)
class PlanChanged:
    at: datetime
    to: str


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    """The ticket now falls under another policy, or its policy was edited (recompute)."""

    at: datetime
    to: str


@dataclass(frozen=True, slots=True)
class CalendarChanged:
    """The name of the calendar that "business" targets use from now on (e.g. the customer moved zone)."""

    at: datetime
    to: str


TicketEvent = (
    TicketCreated
    | CustomerMessage
    | AgentReply
    | StatusChanged
    | PriorityChanged
    | PlanChanged
    | PolicyChanged
    | CalendarChanged
)


@dataclass(frozen=True, slots=True)
class SlaClock:
    """One metric cycle as of `now`; `due_at` and `warning_at` are None while paused."""

    metric: Metric
    cycle: int
    state: ClockState
    target: Target
    started_at: datetime
    due_at: datetime | None
    business_time_used: timedelta
    warning_at: datetime | None
    breached_at: datetime | None = None
    fulfilled_at: datetime | None = None


CalendarResolver = Callable[[str], BusinessCalendar]
PolicyResolver = Callable[[str], Policy]


# -- replay -----------------------------------------------------------------------------------------------


@dataclass
class _Meter:
    metric: Metric
    cycle: int
    target: Target
    calendar: BusinessCalendar
    started_at: datetime
    used: timedelta = _ZERO
    running_since: datetime | None = None
    warning_at: datetime | None = None
    breached_at: datetime | None = None
    fulfilled_at: datetime | None = None
    final_due: datetime | None = None  # the due time a finished cycle was measured against
    ended: bool = False

    def advance(self, t: datetime, warning_fraction: float) -> None:
        """Count business time up to `t`, noting a warning or breach passed on the way."""
        since = self.running_since
        if since is None or t <= since:
            return
        cal = self.calendar
        used = self.used + cal.business_time_between(since, t)
        # only look for the crossing moments when the thresholds were reached in this span
        if self.warning_at is None and used >= self.target.duration * warning_fraction:
            warn_left = self.target.duration * warning_fraction - self.used
            self.warning_at = cal.add_business_time(since, max(warn_left, _ZERO))
        if self.breached_at is None and used >= self.target.duration:
            due = cal.add_business_time(since, max(self.target.duration - self.used, _ZERO))
            if due < t:
                self.breached_at = due
        self.used = used
        self.running_since = t

    def retarget(self, target: Target, calendar: BusinessCalendar, t: datetime, warning_fraction: float) -> None:
        """Switch to a new target at `t` (already advanced to `t`), keeping the time used."""
        self.target, self.calendar = target, calendar
        if self.breached_at is None and self.used > target.duration:
            self.breached_at = t
        if self.warning_at is None and self.used >= target.duration * warning_fraction:
            self.warning_at = t

    def due(self) -> datetime | None:
        if self.breached_at is not None:
            return self.breached_at
        if self.running_since is None:
            return self.final_due if self.fulfilled_at is not None else None
        return self.calendar.add_business_time(self.running_since, self.target.duration - self.used)

    def snapshot(self, warning_fraction: float) -> SlaClock:
        if self.breached_at is not None:
            state = ClockState.BREACHED
        elif self.fulfilled_at is not None or self.ended:
            state = ClockState.FULFILLED
        elif self.running_since is None:
            state = ClockState.PAUSED
        else:
            state = ClockState.ACTIVE
        warning_at = self.warning_at
        if warning_at is None and state is ClockState.ACTIVE and self.running_since is not None:
            left = self.target.duration * warning_fraction - self.used
            warning_at = self.calendar.add_business_time(self.running_since, max(left, _ZERO))
        return SlaClock(
            metric=self.metric,
            cycle=self.cycle,
            state=state,
            target=self.target,
            started_at=self.started_at,
            due_at=None if state is ClockState.PAUSED else self.due(),
            business_time_used=self.used,
            warning_at=warning_at,
            breached_at=self.breached_at,
            fulfilled_at=self.fulfilled_at,
        )


@dataclass
class _Ticket:
    """The replay state of one ticket."""

    resolve_calendar: CalendarResolver
    resolve_policy: PolicyResolver
    warning_fraction: float
    priority: Priority = Priority.P3
    plan: str = ""
    channel: str | None = None
    category: str | None = None
    policy: str = "default"
    business_calendar: str = CALENDAR_BUSINESS
    status: Status = Status.NEW
    first_reply_done: bool = False
    customer_waiting: bool = False  # a public customer message awaits a public agent reply
    targets: dict[Metric, Target] = field(default_factory=dict)
    meters: list[_Meter] = field(default_factory=list)
    open_meters: dict[Metric, _Meter] = field(default_factory=dict)
    cycles: dict[Metric, int] = field(default_factory=dict)
    calendars: dict[str, BusinessCalendar] = field(default_factory=dict)

    def calendar_for(self, target: Target) -> BusinessCalendar:
        name = CALENDAR_24X7 if target.calendar == CALENDAR_24X7 else self.business_calendar
        cal = self.calendars.get(name)
        if cal is None:
            cal = self.resolve_calendar(name)
            self.calendars[name] = cal
        return cal

    @property
    def unsolved(self) -> bool:
        return self.status not in (Status.SOLVED, Status.CLOSED)

    @property
    def running(self) -> bool:
        return self.status not in (Status.PENDING, Status.SOLVED, Status.CLOSED)

    def advance(self, t: datetime) -> None:
        for meter in self.open_meters.values():
            meter.advance(t, self.warning_fraction)

    def open(self, metric: Metric, t: datetime) -> None:
        """Start a new cycle of `metric` at `t` if it has a target and none is open."""
        target = self.targets.get(metric)
        if target is None or metric in self.open_meters:
            return
        self.cycles[metric] = self.cycles.get(metric, 0) + 1
        meter = _Meter(metric, self.cycles[metric], target, self.calendar_for(target), started_at=t)
        meter.running_since = t if self.running else None
        self.meters.append(meter)
        self.open_meters[metric] = meter

    def fulfil(self, metric: Metric, t: datetime) -> None:
        meter = self.open_meters.pop(metric, None)
        if meter is not None:
            meter.final_due = meter.due()
            meter.fulfilled_at, meter.running_since = t, None

    def set_running(self, t: datetime) -> None:
        for meter in self.open_meters.values():
            if self.running and meter.running_since is None:
                meter.running_since = t
            elif not self.running:
                meter.running_since = None

    def open_what_is_owed(self, t: datetime) -> None:
        """Open the cycles the ticket's situation calls for (after creation, a reopen or a re-target)."""
        if not self.unsolved:
            return
        if not self.first_reply_done:
            self.open(Metric.FIRST_RESPONSE, t)
        elif self.customer_waiting:
            self.open(Metric.NEXT_RESPONSE, t)
        self.open(Metric.PERIODIC_UPDATE, t)
        if Metric.RESOLUTION in self.open_meters:
            return
        earlier = [m for m in self.meters if m.metric is Metric.RESOLUTION]
        target = self.targets.get(Metric.RESOLUTION)
        if earlier and not earlier[-1].ended and target is not None:
            # reopened: the same resolution clock goes on from the time already used
            meter = earlier[-1]
            meter.fulfilled_at = meter.final_due = None
            meter.running_since = t if self.running else None
            meter.retarget(target, self.calendar_for(target), t, self.warning_fraction)
            self.open_meters[Metric.RESOLUTION] = meter
            return
        self.open(Metric.RESOLUTION, t)

    def retarget(self, t: datetime) -> None:
        self.targets = self.resolve_policy(self.policy).targets_for(
            self.plan, self.priority, self.channel, self.category
        )
        for metric, meter in list(self.open_meters.items()):
            target = self.targets.get(metric)
            if target is None:
                del self.open_meters[metric]
                if meter.breached_at is None:
                    self.meters.remove(meter)
                else:
                    meter.running_since, meter.ended = None, True
                continue
            meter.retarget(target, self.calendar_for(target), t, self.warning_fraction)
        self.open_what_is_owed(t)

    def apply(self, event: TicketEvent) -> None:
        t = event.at
        self.advance(t)
        if isinstance(event, CustomerMessage):
            if not event.public or self.status is Status.CLOSED:
                return
            was_solved = self.status is Status.SOLVED
            if self.status in (Status.PENDING, Status.SOLVED, Status.NEW):
                self.status = Status.OPEN
                self.set_running(t)
            if self.first_reply_done:
                self.customer_waiting = True
            if was_solved or self.first_reply_done:
                self.open_what_is_owed(t)
        elif isinstance(event, AgentReply):
            if not event.public or self.status is Status.CLOSED:
                return
            self.first_reply_done = True
            self.customer_waiting = False
            self.fulfil(Metric.FIRST_RESPONSE, t)
            self.fulfil(Metric.NEXT_RESPONSE, t)
            if Metric.PERIODIC_UPDATE in self.open_meters:
                self.fulfil(Metric.PERIODIC_UPDATE, t)
                if self.unsolved:
                    self.open(Metric.PERIODIC_UPDATE, t)
        elif isinstance(event, StatusChanged):
            self.change_status(event.to, t)
        elif isinstance(event, PriorityChanged):
            self.priority = Priority(event.to)
            self.retarget(t)
        elif isinstance(event, PlanChanged):
            self.plan = event.to
            self.retarget(t)
        elif isinstance(event, PolicyChanged):
            self.policy = event.to
            self.retarget(t)
        elif isinstance(event, CalendarChanged):
            self.business_calendar = event.to
            self.retarget(t)
        elif isinstance(event, TicketCreated):
            raise InvalidInput("a ticket is created only once")

    def change_status(self, to: Status, t: datetime) -> None:
        to = Status(to)
        if self.status is Status.CLOSED:
            return  # closed is final
        if to in (Status.SOLVED, Status.CLOSED):
            for metric in list(self.open_meters):
                self.fulfil(metric, t)
            self.customer_waiting = False
            self.first_reply_done = True  # solving is the answer; a later message opens a next-response cycle
            self.status = to
            if to is Status.CLOSED:
                for meter in self.meters:
                    meter.ended = meter.ended or meter.fulfilled_at is not None
            return
        was_solved = self.status is Status.SOLVED
        self.status = to
        if was_solved:
            self.open_what_is_owed(t)
        self.set_running(t)


def _check_time(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def compute_clocks(
    events: Sequence[TicketEvent],
    resolve_calendar: CalendarResolver,
    now: datetime,
    resolve_policy: PolicyResolver | None = None,
    warning_fraction: float = DEFAULT_WARNING_FRACTION,
) -> list[SlaClock]:
    """Replay a ticket's event log into its SLA clocks as of `now` (ordered by metric, then cycle).

    Events are taken in time order (stable for equal times); events stamped after `now` count as
    happening at `now`'s end, i.e. `now` is moved up to the last event.
    """
    if not events:
        return []
    if len(events) > MAX_EVENTS:
        raise InvalidInput(f"at most {MAX_EVENTS} events per ticket")
    if not 0 < warning_fraction <= 1:
        raise InvalidInput("warning_fraction must be in (0, 1]")
    if resolve_policy is None:
        from zhiban.sla.plans import resolve_demo_policy

        resolve_policy = resolve_demo_policy
    ordered = sorted(events, key=lambda e: _check_time(e.at, "event time"))
    created = ordered[0]
    if not isinstance(created, TicketCreated):
        raise InvalidInput("the first event of a ticket must be its creation")
    now = max(_check_time(now, "now"), ordered[-1].at.astimezone(UTC))
    ticket = _Ticket(
        resolve_calendar=resolve_calendar,
        resolve_policy=resolve_policy,
        warning_fraction=warning_fraction,
        priority=Priority(created.priority),
        plan=created.plan,
        channel=created.channel,
        category=created.category,
        policy=created.policy,
        business_calendar=created.business_calendar,
        status=Status.NEW,
    )
    start = created.at.astimezone(UTC)
    ticket.retarget(start)
    for event in ordered[1:]:
        ticket.apply(event)
    ticket.advance(now)
    order = {m: i for i, m in enumerate(METRIC_ORDER)}
    meters = sorted(ticket.meters, key=lambda m: (order[m.metric], m.cycle))
    return [m.snapshot(warning_fraction) for m in meters]


def due_preview(
    plan: str,
    priority: Priority,
    created_at: datetime,
    calendar_for: CalendarResolver,
    policy: Policy | None = None,
    channel: str | None = None,
    category: str | None = None,
) -> dict[str, datetime | None]:
    """What-if: the due times of a ticket created now with no further events (None = no target).

    next_response_due assumes a customer message right at creation, after a first reply.
    """
    if policy is None:
        from zhiban.sla.plans import DEMO_POLICY

        policy = DEMO_POLICY
    start = _check_time(created_at, "created_at")
    targets = policy.targets_for(plan, Priority(priority), channel, category)
    result: dict[str, datetime | None] = {}
    for metric in METRIC_ORDER:
        target = targets.get(metric)
        if target is None:
            result[f"{metric.value}_due"] = None
            continue
        cal = calendar_for(CALENDAR_24X7 if target.calendar == CALENDAR_24X7 else CALENDAR_BUSINESS)
        result[f"{metric.value}_due"] = cal.add_business_time(start, target.duration)
    return result


def targets_table(policy: Policy, plans: Iterable[str]) -> Mapping[tuple[str, Priority], dict[Metric, Target]]:
    """Plan × priority → targets, for showing a policy."""
    return {(plan, p): policy.targets_for(plan, p) for plan in plans for p in Priority}


# --- support modes: when a plan's tickets wake the engineer on duty ----------------------------------


class SupportMode(StrEnum):
    QUEUE = "queue"  # answered in business hours; nobody is woken
    DEDICATED = "dedicated"  # a named contact in business hours; outside them the paging priorities page
    STANDBY = "standby"  # 24x7: the paging priorities page at any hour


DEFAULT_PAGING_PRIORITIES: dict[SupportMode, tuple[Priority, ...]] = {
    SupportMode.QUEUE: (),
    SupportMode.DEDICATED: (Priority.P1,),
    SupportMode.STANDBY: (Priority.P1, Priority.P2),
}
MAX_URGENT_PER_DAY = 100


@dataclass(frozen=True, slots=True)
class SupportTerms:
    """How a plan's customers are supported: its mode, what pages, through which incident service, and the
    customer's "wake the engineer on duty" allowance."""

    plan: str
    mode: SupportMode = SupportMode.QUEUE
    paging_priorities: frozenset[Priority] = frozenset()
    paging_service_id: str | None = None
    urgent_priorities: frozenset[Priority] = frozenset()
    urgent_per_day: int = 0

    def pages(self, priority: Priority, *, in_business_hours: bool) -> bool:
        """Does a ticket of this priority wake the engineer on duty now?"""
        if self.paging_service_id is None or priority not in self.paging_priorities:
            return False
        if self.mode == SupportMode.STANDBY:
            return True
        return self.mode == SupportMode.DEDICATED and not in_business_hours

    def may_ask_urgent(self, priority: Priority) -> bool:
        """May the customer ask to wake the engineer on duty for a ticket of this priority?"""
        return (
            self.mode != SupportMode.QUEUE
            and self.paging_service_id is not None
            and self.urgent_per_day > 0
            and priority in self.urgent_priorities
        )


def clean_priorities(values: Iterable[str], what: str) -> list[str]:
    """Priorities as stored: known, unique, in order P1..P4."""
    found = set()
    for value in values:
        try:
            found.add(Priority(value))
        except ValueError as exc:
            raise InvalidInput(f"{what}: {value!r} is not a priority (P1-P4)") from exc
    return [p.value for p in Priority if p in found]


def support_terms(
    plan: str,
    mode: str,
    paging_priorities: Iterable[str],
    paging_service_id: str | None,
    urgent_priorities: Iterable[str],
    urgent_per_day: int,
) -> SupportTerms:
    """Terms from stored values, checked: a paging mode needs an incident service to page through."""
    try:
        support_mode = SupportMode(mode)
    except ValueError as exc:
        raise InvalidInput(f"support mode must be one of {', '.join(m.value for m in SupportMode)}") from exc
    if support_mode != SupportMode.QUEUE and not paging_service_id:
        raise InvalidInput(f"a {support_mode.value} plan names the incident service its pages go through")
    if not 0 <= urgent_per_day <= MAX_URGENT_PER_DAY:
        raise InvalidInput(f"urgent requests per day must be 0-{MAX_URGENT_PER_DAY}")
    return SupportTerms(
        plan=plan,
        mode=support_mode,
        paging_priorities=frozenset(Priority(p) for p in clean_priorities(paging_priorities, "paging priorities")),
        paging_service_id=paging_service_id or None,
        urgent_priorities=frozenset(Priority(p) for p in clean_priorities(urgent_priorities, "urgent priorities")),
        urgent_per_day=urgent_per_day,
    )
