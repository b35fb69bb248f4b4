"""Status e-mail subscriptions cannot be used to mail strangers in bulk: budgets per client and per mailbox."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.notify.store import NotificationRow
from zhiban.status.service import CONFIRM_PER_MAILBOX, CONFIRM_PER_MAILBOX_DAY, SUBSCRIBE_PER_CLIENT

FLOODER = ("203.0.113.9", 50000)
NEIGHBOUR = ("198.51.100.30", 50001)
RATE_LIMITED = "https://zhiban.dev/problems/rate-limited"


def _mails(desk: Desk) -> list[str]:
    """Addresses of the confirmation mails in the outbox."""
    with desk.transaction() as s:
        rows = s.scalars(select(NotificationRow).where(NotificationRow.subject_kind == "status_subscription"))
        return sorted(to for row in rows for to in row.destination["config"]["to"])


def _subscribe(client: TestClient, email: str) -> int:
    return client.post("/api/v1/status/subscriptions", json={"email": email}).status_code


def test_one_client_cannot_mail_strangers_in_bulk(app: FastAPI, desk: Desk, clock: FrozenClock) -> None:
    with TestClient(app, client=FLOODER) as flooder, TestClient(app, client=NEIGHBOUR) as neighbour:
        for n in range(SUBSCRIBE_PER_CLIENT.limit):
            assert _subscribe(flooder, f"victim{n}@mail.test") == 201
        refused = flooder.post("/api/v1/status/subscriptions", json={"email": "one-more@mail.test"})
        assert refused.status_code == 429 and refused.json()["type"] == RATE_LIMITED
        assert refused.headers["content-type"].startswith("application/problem+json")
        form = flooder.post("/status/subscribe", data={"email": "by-form@mail.test"}, headers={"accept": "text/html"})
        assert form.status_code == 429
        # Nothing more was queued for sending, and the refused addresses got no subscription.
        assert len(_mails(desk)) == SUBSCRIBE_PER_CLIENT.limit
        assert "one-more@mail.test" not in _mails(desk) and "by-form@mail.test" not in _mails(desk)
        # Someone else on another network is not affected.
        assert _subscribe(neighbour, "reader@mail.test") == 201
        # The budget refills after its window.
        clock.advance(SUBSCRIBE_PER_CLIENT.window + timedelta(seconds=1))
        assert _subscribe(flooder, "one-more@mail.test") == 201
    assert len(_mails(desk)) == SUBSCRIBE_PER_CLIENT.limit + 2


def test_one_mailbox_gets_a_confirmation_at_most_every_few_minutes(
    app: FastAPI, desk: Desk, clock: FrozenClock
) -> None:
    with TestClient(app, client=FLOODER) as one, TestClient(app, client=NEIGHBOUR) as other:
        assert _subscribe(one, "noc@viewer.test") == 201
        assert _subscribe(one, "noc@viewer.test") == 201  # already subscribed: no second mail, no refusal
        # +tags and letter case reach the same inbox, from any network.
        assert _subscribe(one, "noc+2@viewer.test") == 429
        assert _subscribe(other, "NOC+3@Viewer.test") == 429
        assert _mails(desk) == ["noc@viewer.test"]
        sent = 1
        while sent < CONFIRM_PER_MAILBOX_DAY.limit:
            clock.advance(CONFIRM_PER_MAILBOX.window + timedelta(seconds=1))
            assert _subscribe(one if sent % 2 else other, f"noc+{sent}a@viewer.test") == 201
            sent += 1
        # A day's worth of confirmations has gone to this inbox: no more today.
        clock.advance(CONFIRM_PER_MAILBOX.window + timedelta(seconds=1))
        assert _subscribe(other, "noc+late@viewer.test") == 429
    with desk.transaction() as s:
        count = s.scalar(select(func.count()).select_from(NotificationRow))
    assert count == CONFIRM_PER_MAILBOX_DAY.limit
