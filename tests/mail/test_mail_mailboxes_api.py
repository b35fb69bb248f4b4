"""The support mailboxes' admin API: configure one against a real Dovecot, see its cursor, counts and failures."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.mail.dovecot import Dovecot
from tests.mail.mail_kit import AUTHSERV, DESK_ADDRESS, customer_mail
from tests.tenancy import World, bearer
from zhiban.core.clock import FrozenClock
from zhiban.engine import Worker

ALICE = "alice@liveco.test"


def body(server: Dovecot, **overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": "support",
        "address": DESK_ADDRESS,
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": server.user,
        "password": server.password,
        "authserv_id": AUTHSERV,
        "idle": False,
    }
    return {**fields, **overrides}


def test_an_admin_adds_a_mailbox_and_sees_what_its_polls_did(
    client: TestClient, world: World, dovecot: Dovecot, worker: Worker, clock: FrozenClock
) -> None:
    admin = bearer(world.admin_token)
    created = client.post("/api/v1/mail/mailboxes", json=body(dovecot, max_message_bytes=4096), headers=admin)
    assert created.status_code == 201, created.text
    box = created.json()
    assert "password" not in box and dovecot.password not in created.text
    assert (box["name"], box["uidvalidity"], box["last_uid"], box["last_success_at"]) == ("support", None, 0, None)

    client_ = dovecot.client()
    client_.append("INBOX", customer_mail(ALICE, "Echo in the room", "help", message_id="<api1@x>"))
    client_.append("INBOX", customer_mail(ALICE, "Huge", "y" * 8000, message_id="<api2@x>"))
    client_.logout()
    while worker.run_once(10):
        pass
    [seen] = client.get("/api/v1/mail/mailboxes", headers=admin).json()
    assert (seen["filed"], seen["refused"], seen["last_uid"]) == (1, 1, 2)
    assert seen["uidvalidity"] is not None and seen["last_success_at"] is not None
    assert "UID 2 refused" in seen["last_error"] and "larger than 4096" in seen["last_error"]
    assert client.get(f"/api/v1/mail/mailboxes/{box['id']}", headers=admin).json()["filed"] == 1

    # Polled now on request (its next poll was a minute away on the test clock).
    assert client.post("/api/v1/mail/mailboxes/support/poll", headers=admin).status_code == 200
    assert worker.run_once(10) >= 1
    clock.advance(timedelta(seconds=1))
    assert client.delete("/api/v1/mail/mailboxes/support", headers=admin).status_code == 204
    gone = client.get("/api/v1/mail/mailboxes/support", headers=admin)
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("application/problem+json")
    assert worker.run_once(10) == 0  # its pending poll went with it


def test_bad_mailboxes_are_refused_with_problem_json_and_only_admins_may_touch_them(
    client: TestClient, world: World, dovecot: Dovecot
) -> None:
    admin = bearer(world.admin_token)
    for bad in (
        {"port": 0},
        {"security": "ssl3"},
        {"name": "Bad Name"},
        {"address": "support+x@desk.test"},
        {"move_to": "INBOX"},
        {"poll_seconds": 1},
        {"max_message_bytes": 10**9},
        {"password": ""},
        {"username": "sup\x00port"},  # PostgreSQL text holds no NUL: refused before it is stored
        {"folder": "INBOX\r\nA1 DELETE INBOX"},  # no IMAP command smuggled in a folder name
    ):
        answer = client.post("/api/v1/mail/mailboxes", json=body(dovecot, **bad), headers=admin)
        assert answer.status_code in (400, 422), (bad, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"], answer.json()
    assert client.get("/api/v1/mail/mailboxes", headers=admin).json() == []
    assert client.post("/api/v1/mail/mailboxes", json=body(dovecot), headers=admin).status_code == 201
    again = client.post("/api/v1/mail/mailboxes", json=body(dovecot), headers=admin)
    assert again.status_code == 409
    # An agent's token is not an admin's; nor is a customer's.
    for token in (world.agent_token, world.alice_token):
        assert client.get("/api/v1/mail/mailboxes", headers=bearer(token)).status_code == 403
        assert client.delete("/api/v1/mail/mailboxes/support", headers=bearer(token)).status_code == 403
    assert len(client.get("/api/v1/mail/mailboxes", headers=admin).json()) == 1
