"""A hand-off cut short: e-mail (and SMS, voice) is not sent again but marked unknown; webhooks repeat.

The "crash" is a BaseException raised right after the channel handed the message over: it leaves the
job running with its lease and the message `sending`, exactly what a SIGKILLed worker leaves behind
(tests/incidents/test_paging_crash.py does it with real processes). A second worker then claims the
job once the lease has run out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.incidents.incident_kit import WEBHOOK_SECRET, Receiver
from tests.notify.notify_fakes import Received, Reply, json_reply, provider_server, unused_port
from tests.notify.test_email import Mailbox
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.engine import JobRegistry, Worker
from zhiban.notify import Message
from zhiban.notify import jobs as notify_jobs
from zhiban.notify import service as notify
from zhiban.notify.channels.email import EmailChannel
from zhiban.notify.channels.phone import TwilioProvider
from zhiban.notify.channels.webhook import WebhookChannel
from zhiban.notify.egress import EgressPolicy, guarded_client
from zhiban.notify.registry import ChannelDeps
from zhiban.notify.store import NotificationRow

LEASE = timedelta(seconds=30)


class Killed(BaseException):
    """The worker process dies: nothing after the hand-off runs."""


@pytest.fixture
def mailbox(clock: FrozenClock) -> Iterator[Mailbox]:
    box = Mailbox()
    port = unused_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    notify.set_channel_deps(ChannelDeps(clock=clock, smtp_url=f"smtp://127.0.0.1:{port}?from=desk@vendor.test"))
    try:
        yield box
    finally:
        notify.set_channel_deps(None)
        controller.stop()


def _worker(desk: Desk, clock: FrozenClock, name: str) -> Worker:
    registry = JobRegistry()
    registry.include(notify_jobs.registry)
    return Worker(desk.sessions, registry, clock, name, lease=LEASE)


def _queue(desk: Desk, clock: FrozenClock, channel: str, config: dict[str, Any], key: str) -> str:
    message = Message(
        subject="sh-edge-07 packet loss", text="Packet loss above 5 % on sh-edge-07.", idempotency_key=key
    )
    with desk.transaction() as s:
        found, new = notify.queue_message(
            s, clock, message=message, subject_kind="test", subject_id="t-1", channel=channel, config=config,
            due_at=clock.now(),
        )  # fmt: skip
    assert new
    return found


def _row(desk: Desk, notification_id: str) -> NotificationRow:
    with desk.transaction() as s:
        row = s.get(NotificationRow, notification_id)
        assert row is not None
        s.expunge(row)
        return row


def _dies_after_handoff(send: Callable[..., Any]) -> Callable[..., Any]:
    def send_then_die(self: Any, message: Message, destination: Any) -> Any:
        send(self, message, destination)
        raise Killed

    return send_then_die


def _counter(counter: Any, channel: str) -> float:
    return float(counter.labels(channel)._value.get())


def test_email_cut_by_a_crash_is_unknown_not_sent_twice(
    desk: Desk, clock: FrozenClock, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    notification_id = _queue(desk, clock, "email", {"to": ["oncall@vendor.test"]}, "handoff:mail:1")
    unknown_before = _counter(notify.HANDOFF_UNKNOWN, "email")
    with monkeypatch.context() as patch:
        patch.setattr(EmailChannel, "send", _dies_after_handoff(EmailChannel.send))
        with pytest.raises(Killed):
            _worker(desk, clock, "victim").run_once()
    cut = _row(desk, notification_id)
    assert cut.state == "sending" and cut.handoff_id and len(mailbox.received) == 1

    clock.advance(LEASE + timedelta(seconds=1))
    assert _worker(desk, clock, "survivor").run_once() == 1

    row = _row(desk, notification_id)
    assert row.state == "unknown" and row.attempts == 1 and row.handoff_id == cut.handoff_id
    assert row.last_error and "not sent again" in row.last_error
    assert len(mailbox.received) == 1  # at most once: the mail went out once and was not repeated
    assert _counter(notify.HANDOFF_UNKNOWN, "email") == unknown_before + 1
    clock.advance(timedelta(minutes=10))
    assert _worker(desk, clock, "later").run_once() == 0  # the job is finished, nothing retries it


def test_webhook_cut_by_a_crash_is_sent_again_with_the_same_key(
    desk: Desk, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, allow_loopback_egress: None
) -> None:
    notify.set_channel_deps(ChannelDeps(clock=clock))
    receiver = Receiver(clock_now=clock.now)
    try:
        with receiver.running():
            config = {"url": receiver.url, "secret": WEBHOOK_SECRET}
            notification_id = _queue(desk, clock, "webhook", config, "handoff:hook:1")
            repeated_before = _counter(notify.HANDOFF_REPEATED, "webhook")
            with monkeypatch.context() as patch:
                patch.setattr(WebhookChannel, "send", _dies_after_handoff(WebhookChannel.send))
                with pytest.raises(Killed):
                    _worker(desk, clock, "victim").run_once()
            clock.advance(LEASE + timedelta(seconds=1))
            assert _worker(desk, clock, "survivor").run_once() == 1
    finally:
        notify.set_channel_deps(None)
    row = _row(desk, notification_id)
    assert row.state == "sent" and row.attempts == 2
    assert receiver.keys == {"handoff:hook:1": 2}  # at least once: the receiver drops the repeat by its key
    assert _counter(notify.HANDOFF_REPEATED, "webhook") == repeated_before + 1


def test_a_hung_run_that_answers_late_settles_an_unknown_page(
    desk: Desk, clock: FrozenClock, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    notification_id = _queue(desk, clock, "email", {"to": ["oncall@vendor.test"]}, "handoff:mail:2")
    send = EmailChannel.send

    def hang_past_the_lease(self: Any, message: Message, destination: Any) -> Any:
        # While this run hangs, its lease runs out and another worker takes the job over.
        clock.advance(LEASE + timedelta(seconds=1))
        assert _worker(desk, clock, "survivor").run_once() == 1
        assert _row(desk, notification_id).state == "unknown"
        return send(self, message, destination)

    monkeypatch.setattr(EmailChannel, "send", hang_past_the_lease)
    _worker(desk, clock, "hung").run_once()
    row = _row(desk, notification_id)
    assert row.state == "sent" and row.provider_id and len(mailbox.received) == 1


def test_only_channels_where_a_repeat_reaches_a_person_again_are_at_most_once() -> None:
    from zhiban.notify.registry import CHANNEL_TYPES

    # A chat thread's reply shows twice in the customer's group if repeated (chat groups' mirror).
    assert sorted(t.name for t in CHANNEL_TYPES if not t.repeat_safe) == [
        "dingtalk_session",
        "email",
        "feishu_thread",
        "slack_thread",
        "sms",
        "voice",
    ]


def _loopback_client() -> httpx.Client:
    """A guarded client that may reach the tests' own provider on 127.0.0.1, with a short read timeout."""
    return guarded_client(policy=EgressPolicy.parse("127.0.0.1"), timeout=httpx.Timeout(0.3, connect=1.0))


def _sms_provider(base_url: str, client: httpx.Client) -> TwilioProvider:
    return TwilioProvider(
        "AC" + "0123456789abcdef" * 2, "twilio-auth-token", "+15005550006", base_url=base_url, client=client
    )


def test_an_sms_without_an_answer_is_unknown_not_sent_again(desk: Desk, clock: FrozenClock) -> None:
    def slow(request: Received) -> Reply:
        time.sleep(1.0)  # Twilio took the request but the answer comes after the client gave up
        return json_reply(201, {"sid": "SM" + "0" * 32, "status": "queued"})

    with (
        provider_server(slow) as server,
        _loopback_client() as client,
    ):
        notify.set_channel_deps(ChannelDeps(clock=clock, sms_provider=_sms_provider(server.url, client)))
        try:
            notification_id = _queue(desk, clock, "sms", {"to": "+8613800138000"}, "handoff:sms:1")
            assert _worker(desk, clock, "w1").run_once() == 1
            clock.advance(timedelta(hours=1))
            assert _worker(desk, clock, "w2").run_once() == 0  # nothing left to retry
        finally:
            notify.set_channel_deps(None)
        time.sleep(1.0)
        assert len(server.received) == 1
    row = _row(desk, notification_id)
    assert row.state == "unknown" and row.attempts == 1
    assert row.last_error and "after the request went out" in row.last_error


def test_an_sms_that_never_left_is_tried_again(desk: Desk, clock: FrozenClock) -> None:
    with _loopback_client() as client:
        # Nothing listens there: the connection is refused, so the provider cannot have the message.
        notify.set_channel_deps(
            ChannelDeps(clock=clock, sms_provider=_sms_provider(f"http://127.0.0.1:{unused_port()}", client))
        )
        try:
            notification_id = _queue(desk, clock, "sms", {"to": "+8613800138000"}, "handoff:sms:2")
            assert _worker(desk, clock, "w1").run_once() == 1
        finally:
            notify.set_channel_deps(None)
    row = _row(desk, notification_id)
    assert row.state == "pending" and row.attempts == 1
    assert row.last_error == "connection refused"  # the short class users see (issue 18.1)
