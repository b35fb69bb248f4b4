"""Ticket changes for other features: SLA clocks, triage, mail and incident links listen here.

Two ways to listen:

- `subscribe(listener)`: the listener hears each `TicketChange` value (never the ticket's rows) inside the
  transaction that records it, so whatever it saves (clocks, timers, links, a durable job) commits or rolls
  back with the change itself. It runs on the request's path: keep it to a cheap check and a few writes.
- `follow(name, listener, kinds=...)`: the listener hears the changes of those kinds after they commit,
  many at once, from a worker (`tickets.follow` batch jobs, enqueued in the change's own transaction, so a
  committed change is never missed). Each call gets the changes in log order, in a transaction of its own.
  It runs at least once per change: a batch that fails is re-run change by change, and a change whose run
  fails is retried, so a follower must be idempotent (and a failing follower makes the others hear that
  change again). Work that a rush should not wait for belongs here: classification, suggestions, links.

A ticket's team is not a change in its log (routing is triage's bookkeeping): `on_routed(listener)` hears
the tickets that a statement gave to a team (ticket id -> team id), in that statement's transaction, e.g.
so the team hears of its new tickets in the same batch that routed them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.engine import enqueue
from zhiban.tickets.model import EventKind, TicketChange

TicketListener = Callable[[Session, Clock, TicketChange], None]
TicketFollower = Callable[[Session, Clock, Sequence[TicketChange]], None]
RoutedListener = Callable[[Session, Clock, Mapping[int, str]], object]
FOLLOW_JOB = "tickets.follow"
_listeners: list[TicketListener] = []
_followers: dict[str, tuple[TicketFollower, frozenset[EventKind]]] = {}
_followed: set[EventKind] = set()
_routed: list[RoutedListener] = []


def subscribe(listener: TicketListener) -> TicketListener:
    """Call `listener` after every ticket change, in its transaction (usable as a decorator; idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def on_routed(listener: RoutedListener) -> RoutedListener:
    """Call `listener` with the tickets just given to a team (id -> team id), in that transaction (idempotent)."""
    if listener not in _routed:
        _routed.append(listener)
    return listener


def routed(session: Session, clock: Clock, teams: Mapping[int, str]) -> None:
    """Tell the routing listeners which tickets a statement gave to which team (tickets' own side)."""
    if teams:
        for listener in list(_routed):
            listener(session, clock, teams)


def follow(name: str, listener: TicketFollower, *, kinds: Collection[EventKind]) -> TicketFollower:
    """Call `listener` with batches of committed changes of `kinds`, from a worker (a name replaces its follower)."""
    _followers[name] = (listener, frozenset(kinds))
    _followed.clear()
    for _, wanted in _followers.values():
        _followed.update(wanted)
    return listener


def followers() -> list[str]:
    """Names of the followers registered in this process."""
    return list(_followers)


def emit(session: Session, clock: Clock, change: TicketChange) -> None:
    """Tell the listeners now, and queue the change for its followers (one job per change, same transaction)."""
    for listener in list(_listeners):
        listener(session, clock, change)
    if change.kind in _followed:
        enqueue(session, FOLLOW_JOB, {"seq": change.seq}, due_at=clock.now())


def deliver(session: Session, clock: Clock, changes: Sequence[TicketChange]) -> None:
    """Hand committed changes to every follower that wants their kinds, in log order (the worker's side)."""
    ordered = sorted(changes, key=lambda c: c.seq)
    for listener, kinds in list(_followers.values()):
        wanted = [c for c in ordered if c.kind in kinds]
        if wanted:
            listener(session, clock, wanted)
