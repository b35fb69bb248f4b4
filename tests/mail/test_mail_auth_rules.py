"""Pure rules of sender authentication and reply tokens."""

from __future__ import annotations

import pytest

from zhiban.mail.auth import aligned, trusted_ids
from zhiban.mail.reply_token import MAX_TOKENS, reply_token, ticket_addressing, tickets_named


@pytest.mark.parametrize(
    ("domain", "from_domain", "ok"),
    [
        ("liveco.test", "liveco.test", True),
        ("LiveCo.Test.", "liveco.test", True),
        ("@liveco.test", "liveco.test", True),  # header.i form
        ("liveco.test", "mail.liveco.test", True),  # the parent speaks for its subdomain
        ("mail.liveco.test", "liveco.test", False),
        ("evilliveco.test", "liveco.test", False),
        ("test", "liveco.test", False),  # a bare top-level domain never
        ("", "liveco.test", False),
    ],
)
def test_alignment(domain: str, from_domain: str, ok: bool) -> None:
    assert aligned(domain, from_domain) is ok


def test_trusted_ids_from_the_setting() -> None:
    assert trusted_ids(" MX.desk.test, mx2.desk.test ,,") == frozenset({"mx.desk.test", "mx2.desk.test"})
    assert trusted_ids("") == frozenset()


def test_reply_addressing_carries_a_token_only_the_key_makes() -> None:
    sent = ticket_addressing("key", 42, "Zhiban Support <support+desk@desk.test>")
    token = reply_token("key", 42)
    assert sent.reply_to == f"support+t42.{token}@desk.test"
    assert sent.message_id.startswith(f"<zhiban.t42.{token}.") and sent.message_id.endswith("@desk.test>")
    assert ticket_addressing("key", 42, "support@desk.test").message_id != sent.message_id  # unique per mail
    assert reply_token("other", 42) != token and reply_token("key", 43) != token
    # Case folded by a relay still matches; another ticket's number with this token does not.
    assert tickets_named("key", [sent.reply_to.upper()]) == [42]
    assert tickets_named("key", [f"support+t43.{token}@desk.test"]) == []
    assert tickets_named("other", [sent.reply_to, sent.message_id]) == []


def test_a_flood_of_tokens_is_not_checked_past_the_bound() -> None:
    forged = [f"support+t{i}.{'a' * 26}@desk.test" for i in range(MAX_TOKENS)]
    real = ticket_addressing("key", 7, "support@desk.test").reply_to
    assert tickets_named("key", [*forged, real]) == []
    assert tickets_named("key", [real, *forged]) == [7]
