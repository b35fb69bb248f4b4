"""Per-person notification rules and the idempotency keys of pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zhiban.core.errors import InvalidInput
from zhiban.incidents.escalation import step_key
from zhiban.notify.model import NotificationRule, notification_plan

Key = tuple[str, int, str, int]
PAGED = datetime(2026, 1, 3, 19, 0, tzinfo=UTC)
RULES = [
    NotificationRule("voice", "+8613800000000", 5),
    NotificationRule("feishu", "ou_7d8a6e", 0),
    NotificationRule("sms", "+8613800000000", 2),
]


def test_notifications_go_out_in_time_order_from_the_page() -> None:
    assert notification_plan(RULES, PAGED) == [
        ("feishu", "ou_7d8a6e", PAGED),
        ("sms", "+8613800000000", PAGED + timedelta(minutes=2)),
        ("voice", "+8613800000000", PAGED + timedelta(minutes=5)),
    ]


def test_acknowledgement_stops_the_notifications_not_yet_sent() -> None:
    planned = notification_plan(RULES, PAGED, acknowledged_at=PAGED + timedelta(minutes=3))
    assert [item.channel for item in planned] == ["feishu", "sms"]
    assert notification_plan(RULES, PAGED, acknowledged_at=PAGED) == []


def test_rules_due_together_keep_their_order() -> None:
    rules = [NotificationRule("email", "a@example.com", 1), NotificationRule("push", "device-1", 1)]
    assert [item.channel for item in notification_plan(rules, PAGED)] == ["email", "push"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: NotificationRule("", "x"),
        lambda: NotificationRule("sms gateway", "x"),
        lambda: NotificationRule("sms", ""),
        lambda: NotificationRule("sms", "x", -1),
        lambda: notification_plan(RULES, datetime(2026, 1, 3)),
        lambda: notification_plan([NotificationRule("sms", "x")] * 21, PAGED),
    ],
)
def test_bad_rules_are_refused(build: object) -> None:
    with pytest.raises(InvalidInput):
        build()  # type: ignore[operator]


def test_step_key_is_stable_and_readable() -> None:
    assert step_key("inc-42", 3, "lin", 0) == step_key("inc-42", 3, "lin", 0)
    assert step_key("inc-42", 3, "lin", 0).startswith("esc:inc-42:3:lin:")


def test_step_key_does_not_confuse_parts_that_contain_separators() -> None:
    # Joined naively, both would read "a:1:2:b:0".
    assert step_key("a:1", 2, "b", 0) != step_key("a", 1, "2:b", 0)


parts = st.tuples(
    st.text(min_size=1, max_size=12), st.integers(0, 50), st.text(min_size=1, max_size=12), st.integers(0, 5)
)


@given(parts, parts)
def test_step_key_differs_whenever_any_part_differs(first: Key, second: Key) -> None:
    assert (step_key(*first) == step_key(*second)) == (first == second)


@pytest.mark.parametrize("args", [("", 0, "lin", 0), ("inc", -1, "lin", 0), ("inc", 0, "", 0), ("inc", 0, "lin", True)])
def test_bad_step_keys_are_refused(args: Key) -> None:
    with pytest.raises(InvalidInput):
        step_key(*args)
