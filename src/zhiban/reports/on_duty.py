"""Proof that someone is on duty: for tickets filed under a paging support mode, how long from the ticket to
the page, to the acknowledgement and to the first public reply (p50/p90), by mode and by where the filing fell
on the customer's calendar. Pure: the read side hands in the facts.

Every step is measured from the ticket's creation (what the customer waited), so a ticket raised to a paging
priority later, or made urgent later, counts its wait before the page too. A step not reached by the report's
moment is not a duration: the `paged`, `acknowledged` and `answered` counts say how many reached it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from zhiban.reports.definitions import definition
from zhiban.reports.model import HOURS_CLASSES, PAGING_MODES, Definition, OnDutyFact, Percentiles, bounded, percentiles

ALL = "all"
STEPS: tuple[str, ...] = ("page", "acknowledge", "first_reply")


@dataclass(frozen=True, slots=True)
class OnDutyGroup:
    """One mode × hours class: how many tickets, and the time to each step over the tickets that reached it."""

    mode: str  # dedicated | standby | all
    hours: str  # business_hours | out_of_hours | holiday | all
    tickets: int
    steps: dict[str, Percentiles]  # step → p50/p90 (n = tickets that reached it)


@dataclass(frozen=True, slots=True)
class OnDutyTimes:
    groups: tuple[OnDutyGroup, ...]  # every mode × hours class, then each mode over all hours, then all × all
    definition: Definition = field(default_factory=lambda: definition("on_duty_times"))

    def group(self, mode: str = ALL, hours: str = ALL) -> OnDutyGroup:
        """One group by its mode and hours class ("all" for either)."""
        return next(g for g in self.groups if g.mode == mode and g.hours == hours)


def _waits(fact: OnDutyFact) -> dict[str, timedelta | None]:
    def since(moment: object) -> timedelta | None:
        return None if moment is None else moment - fact.created_at  # type: ignore[operator]

    return {
        "page": since(fact.paged_at),
        "acknowledge": since(fact.acknowledged_at),
        "first_reply": since(fact.first_public_reply_at),
    }


def on_duty_times(facts: Iterable[OnDutyFact]) -> OnDutyTimes:
    """Time from ticket to page, acknowledgement and first public reply, p50/p90, by mode and hours class."""
    waits: dict[tuple[str, str], dict[str, list[timedelta]]] = defaultdict(lambda: {s: [] for s in STEPS})
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for fact in bounded(facts, "tickets"):
        measured = _waits(fact)
        for key in ((fact.mode, fact.hours), (fact.mode, ALL), (ALL, fact.hours), (ALL, ALL)):
            counts[key] += 1
            for step, wait in measured.items():
                if wait is not None:
                    waits[key][step].append(wait)
    keys = [(m, h) for m in (*PAGING_MODES, ALL) for h in (*HOURS_CLASSES, ALL)]
    groups = tuple(
        OnDutyGroup(mode, hours, counts.get((mode, hours), 0),
                    {s: percentiles(waits[(mode, hours)][s] if (mode, hours) in waits else ()) for s in STEPS})
        for mode, hours in keys
    )  # fmt: skip
    return OnDutyTimes(groups)
