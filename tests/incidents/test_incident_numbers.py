"""Incident numbers: unique and ascending; on PostgreSQL a transaction opening incidents never waits for another
one's commit (a counter row would hold its lock until then, so a storm's transactions opened incidents in turn)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from zhiban.desk import Desk
from zhiban.incidents.alerts import _reserve_numbers


def test_numbers_are_unique_and_ascending(desk: Desk) -> None:
    taken: list[int] = []
    for count in (3, 1, 5):
        with desk.transaction() as s:
            numbers = _reserve_numbers(s, count)
        assert len(numbers) == count and numbers == sorted(numbers)
        assert not taken or min(numbers) > max(taken)
        taken += numbers
    assert taken[0] == 1 and len(set(taken)) == 9


def test_on_postgresql_two_open_transactions_take_numbers_without_waiting(desk: Desk) -> None:
    with desk.sessions() as probe:
        if probe.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite has one writer at a time: the counter row is part of the lock it already holds")
    holding = desk.sessions()
    holding.begin()
    try:
        held = _reserve_numbers(holding, 2)  # a storm's batch, not committed yet
        with desk.sessions() as other, other.begin():
            other.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting on the other's lock would fail here
            mine = _reserve_numbers(other, 1)
        assert mine[0] not in held
        holding.commit()
    finally:
        holding.close()
    with desk.transaction() as s:
        assert min(_reserve_numbers(s, 2)) > max(*held, *mine)
