"""The acknowledgement of a ticket filed by e-mail says when an engineer on duty is being paged for it.

smtplib → the real inbound listener → a ticket that pages (duty, in the same transaction) → the acknowledgement
composed after it → a real SMTP server (aiosmtpd). Runs on SQLite and PostgreSQL; the clock reads Saturday
03:00 in Shanghai.
"""

from __future__ import annotations

from email.message import EmailMessage

from tests.incidents.incident_kit import build as build_paging
from tests.mail.mail_kit import Outbox, customer_mail, smtp_send
from tests.tenancy import World
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.mail.inbound import InboundListener
from zhiban.notify import service as notify
from zhiban.sla import service as sla


def _standby(desk: Desk) -> None:
    """Enterprise pages P1-P3 at any hour (an e-mailed ticket is P3) through the test's paging service."""
    paging = build_paging(desk)
    notify.set_channel_deps(None)  # the kit's channels log mail; these tests send it to the real SMTP server
    with desk.transaction() as s:
        support = {"mode": "standby", "paging_service_id": paging.service, "paging_priorities": ["P1", "P2", "P3"]}
        sla.save_plan(s, desk.clock, "enterprise", support=support)


def _acknowledgement(outbox: Outbox, worker: Worker, to: str) -> str:
    while worker.run_once():
        pass
    mails: list[EmailMessage] = [m for m in outbox.received if m["To"] == to]
    assert len(mails) == 1, [m["To"] for m in outbox.received]
    return str(mails[0].get_body(("plain",)).get_content())  # type: ignore[union-attr]


def test_the_acknowledgement_says_an_engineer_on_duty_was_paged(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    _standby(desk)
    with desk.transaction() as s:  # a LiveCo engineer who reads Chinese, in Shanghai
        identity.create_person(
            s, desk.clock, email="chen@liveco.test", name="Chen", role=Role.CUSTOMER,
            organization_id=world.liveco, language="zh", timezone="Asia/Shanghai",
        )  # fmt: skip
    for sender, message_id in (("alice@liveco.test", "<a1@liveco.test>"), ("chen@liveco.test", "<c1@liveco.test>")):
        raw = customer_mail(sender, "Live rooms stutter", "All rooms in cn-east since 02:55.", message_id=message_id)
        assert smtp_send(inbound.port, raw, mail_from=sender).code == 250

    english = _acknowledgement(outbox, worker, "alice@liveco.test")
    assert "wakes the engineer on duty: we paged them at 2026-11-20 19:00 UTC+00:00." in english
    assert english.index("opened ticket #") < english.index("engineer on duty")  # after the acknowledgement itself
    chinese = _acknowledgement(outbox, worker, "chen@liveco.test")
    assert "我们已于 2026-11-21 03:00 UTC+08:00 呼叫值班工程师" in chinese


def test_a_ticket_that_pages_nobody_says_nothing_of_it(
    desk: Desk, world: World, inbound: InboundListener, outbox: Outbox, worker: Worker
) -> None:
    _standby(desk)
    raw = customer_mail("bob@classmate.test", "Echo in class", "Students hear an echo.", message_id="<b1@cm.test>")
    assert smtp_send(inbound.port, raw, mail_from="bob@classmate.test").code == 250  # standard plan: a queue
    text = _acknowledgement(outbox, worker, "bob@classmate.test")
    assert "opened ticket #" in text and "engineer on duty" not in text
