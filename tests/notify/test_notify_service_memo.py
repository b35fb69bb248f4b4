"""paging_rules is remembered for one transaction only, and forgets when the person's rules change."""

from __future__ import annotations

from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.notify import service as notify


def test_paging_rules_are_remembered_within_a_transaction_only(desk: Desk) -> None:
    clock = desk.clock
    with desk.transaction() as s:
        person = identity.create_person(s, clock, email="oncall@vendor.test", name="On-call", role=Role.AGENT)
        assert notify.paging_rules(s, person.id, "high") == []
        method = notify.add_contact_method(s, clock, person_id=person.id, channel="email", config={"to": ["a@b.test"]})
        notify.add_notification_rule(s, clock, person_id=person.id, contact_method_id=method.id, delay_minutes=0)
        [(rule, found)] = notify.paging_rules(s, person.id, "high")  # the change is seen in the same transaction
        assert found.id == method.id and rule.delay_minutes == 0
        assert notify.paging_rules(s, person.id, "high") is notify.paging_rules(s, person.id, "high")
    with desk.transaction() as s:
        other = notify.add_contact_method(s, clock, person_id=person.id, channel="email", config={"to": ["c@d.test"]})
        notify.add_notification_rule(s, clock, person_id=person.id, contact_method_id=other.id, delay_minutes=2)
    with desk.transaction() as s:
        assert [m.id for _, m in notify.paging_rules(s, person.id, "high")] == [method.id, other.id]
