"""The one outbox: queue_email through notify's delivery to a real SMTP server, and the audit list of every kind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.mail.mail_kit import Outbox, unused_port
from tests.oncall.test_oncall_views import _login
from tests.tenancy import bearer, build_world
from zhiban.core.errors import InvalidInput
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.notify import Link, Message, outbox
from zhiban.notify import jobs as notify_jobs
from zhiban.notify import service as notify

DESK = "desk@vendor.test"


def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Outbox]:
    box = Outbox(port=unused_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    monkeypatch.setenv("ZHIBAN_SMTP_URL", f"smtp://127.0.0.1:{box.port}?from={DESK}&timeout=5")
    get_settings.cache_clear()
    try:
        yield box
    finally:
        controller.stop()
        get_settings.cache_clear()


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Outbox]:
    yield from smtp_server(monkeypatch)


def message(key: str, event: str, **fields: object) -> Message:
    return Message(subject=f"About {key}", text="Hello.", idempotency_key=key, event=event, **fields)  # type: ignore[arg-type]


def test_queue_email_passes_thread_headers_through_to_the_wire(desk: Desk, smtp: Outbox) -> None:
    reply = message(
        "mail:reply:7",
        "ticket.reply",
        message_id="<zhiban.7.abc@desk.test>",
        references=("<m1@customer.test>", "<zhiban.7.first@desk.test>"),
        links=(Link("ticket", "https://desk.test/tickets/7", "Ticket #7"),),
    )
    with desk.transaction() as s:
        first, new = outbox.queue_email(
            s, desk.clock, message=reply, to="alice@customer.test", subject_kind="ticket_mail", subject_id=3,
            ticket_id=7, reply_to="reply+t0k3n@desk.test",
        )  # fmt: skip
        again, repeated = outbox.queue_email(
            s, desk.clock, message=reply, to="alice@customer.test", subject_kind="ticket_mail", subject_id=3
        )
    assert new and not repeated and again == first
    assert Worker(desk.sessions, notify_jobs.registry, desk.clock).run_once() == 1
    [mail] = smtp.received
    assert mail["To"] == "alice@customer.test" and mail["From"] == DESK
    assert mail["Message-ID"] == "<zhiban.7.abc@desk.test>"
    assert mail["In-Reply-To"] == "<zhiban.7.first@desk.test>"
    assert mail["References"].split() == ["<m1@customer.test>", "<zhiban.7.first@desk.test>"]
    assert mail["Reply-To"] == "reply+t0k3n@desk.test"
    with desk.transaction() as s:
        row = notify.get_notification(s, first)
        assert (row.kind, row.ticket_id, row.subject_kind, row.subject_id, row.state) == (
            "ticket.reply", 7, "ticket_mail", "3", "sent"
        )  # fmt: skip


def test_an_address_the_channel_refuses_is_refused_before_anything_is_stored(desk: Desk) -> None:
    with desk.transaction() as s:
        with pytest.raises(InvalidInput):
            outbox.queue_email(
                s, desk.clock, message=message("k1", "sla.breach"), to="not an address", subject_kind="x", subject_id=1
            )
        assert outbox.recent(s) == []


def _queue_kinds(desk: Desk) -> None:
    with desk.transaction() as s:
        for key, event, ticket in (
            ("p1", "incident.page", None),
            ("s1", "sla.warning", 7),
            ("s2", "sla.breach", 7),
            ("g1", "oncall.gap", None),
            ("r1", "ticket.reply", 8),
            ("c1", "detect.notice", None),
        ):
            outbox.queue_email(
                s, desk.clock, message=message(key, event), to=f"{key}@vendor.test", subject_kind="test",
                subject_id=key, ticket_id=ticket,
            )  # fmt: skip


def test_recent_lists_every_kind_with_its_state_and_filters(desk: Desk) -> None:
    _queue_kinds(desk)
    with desk.transaction() as s:
        everything = outbox.recent(s)
        assert sorted(r.kind for r in everything) == sorted(
            ["incident.page", "sla.warning", "sla.breach", "oncall.gap", "ticket.reply", "detect.notice"]
        )
        assert {r.state for r in everything} == {"pending"}
        assert sorted(r.kind for r in outbox.recent(s, kind="sla")) == ["sla.breach", "sla.warning"]
        assert [r.kind for r in outbox.recent(s, kind="sla.breach")] == ["sla.breach"]
        assert outbox.recent(s, kind="sl") == []  # a family is a whole dotted prefix
        assert sorted(r.kind for r in outbox.recent(s, ticket_id=7)) == ["sla.breach", "sla.warning"]
        assert outbox.recent(s, state="sent") == []
        with pytest.raises(InvalidInput, match="state"):
            outbox.recent(s, state="lost")


def test_admins_audit_the_whole_outbox_by_api_and_page(client: TestClient, desk: Desk) -> None:
    w = build_world(desk)
    _queue_kinds(desk)
    everything = client.get("/api/v1/notifications", headers=bearer(w.admin_token))
    assert everything.status_code == 200
    assert len(everything.json()) == 6
    sla = client.get("/api/v1/notifications?kind=sla&state=pending", headers=bearer(w.admin_token)).json()
    assert sorted((n["kind"], n["ticket_id"], n["to"]) for n in sla) == [
        ("sla.breach", 7, ["s2@vendor.test"]),
        ("sla.warning", 7, ["s1@vendor.test"]),
    ]
    # Agents see messages about a subject they name, not the whole outbox; customers nothing.
    assert client.get("/api/v1/notifications", headers=bearer(w.agent_token)).status_code == 403
    assert (
        client.get("/api/v1/notifications?subject_kind=test&subject_id=r1", headers=bearer(w.agent_token)).json()[0][
            "kind"
        ]
        == "ticket.reply"
    )
    assert client.get("/api/v1/notifications", headers=bearer(w.alice_token)).status_code == 403

    _login(client, desk, "agent@vendor.test")
    assert client.get("/agent/outbox", headers={"accept": "text/html"}).status_code == 403
    _login(client, desk, "admin@vendor.test")
    page = client.get("/agent/outbox?kind=sla")
    assert page.status_code == 200
    assert "<code>sla.breach</code>" in page.text and "s2@vendor.test" in page.text
    assert "<code>incident.page</code>" not in page.text


def test_delivery_follows_a_changed_smtp_url(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = Worker(desk.sessions, notify_jobs.registry, desk.clock)
    first = smtp_server(monkeypatch)
    box1 = next(first)
    with desk.transaction() as s:
        outbox.queue_email(s, desk.clock, message=message("m1", "sla.breach"), to="a@vendor.test", subject_kind="t",
                           subject_id=1)  # fmt: skip
    assert worker.run_once() == 1 and len(box1.received) == 1
    second = smtp_server(monkeypatch)
    box2 = next(second)
    with desk.transaction() as s:
        outbox.queue_email(s, desk.clock, message=message("m2", "sla.breach"), to="a@vendor.test", subject_kind="t",
                           subject_id=2)  # fmt: skip
    assert worker.run_once() == 1
    assert len(box1.received) == 1 and len(box2.received) == 1  # the new relay, not a kept session to the old
    for gen in (second, first):
        with pytest.raises(StopIteration):
            next(gen)
