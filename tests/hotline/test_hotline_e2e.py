"""End to end with the real processes: `zhiban serve` on the demo world at 03:00 Saturday in Shanghai, Twilio's
REST API played by a local server. LiveCo's developer calls the Enterprise line and leaves a voicemail -> a ticket
-> the engineer on call is called -> presses 1 (Twilio's callback, signed by twilio's validator) -> the customer
sees the acknowledgement."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.duty.desk_processes import Deployment, Mailbox, wait_for
from tests.hotline.kit import ACCOUNT_SID, AUTH_TOKEN, VOICE, FakeTwilioApi, parse, said
from zhiban.notify.channels.phone import PAGE_ACK_PATH, PAGE_STATUS_PATH

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("desk-processes")]

SATURDAY_3AM = "2026-12-12T03:00:00+08:00"
LIVECO_DEV = "+15550142001"  # the demo's LiveCo developer (demo.seed.DEMO_CALLERS)
ENTERPRISE_LINE = "+15550100001"
ENGINEER_PHONE = "+8613700003333"


@dataclass
class HotlineDeployment(Deployment):
    twilio_url: str = ""

    def env(self) -> dict[str, str]:
        return {**super().env(), "ZHIBAN_TWILIO_URL": self.twilio_url}


def _signed(http: httpx.Client, base: str, path: str, params: dict[str, str]) -> httpx.Response:
    from twilio.request_validator import RequestValidator

    signature = RequestValidator(AUTH_TOKEN).compute_signature(base + path, params)
    return http.post(path, data=params, headers={"X-Twilio-Signature": signature})


def _voice_rule(desk: Deployment, email: str) -> None:
    """The engineer on call is paged by a phone call (set up in the deployment's database, as a profile would)."""
    import zhiban.store.models  # noqa: F401  (every table on Base.metadata)
    from zhiban.core.clock import clock_from
    from zhiban.identity import service as identity
    from zhiban.notify import service as notify
    from zhiban.store.db import make_engine, session_factory

    engine = make_engine(desk.db_url)
    clock = clock_from(desk.clock_start or "", desk.anchor, allowed=True)
    try:
        with session_factory(engine)() as s, s.begin():
            person = identity.person_with_email(s, email)
            assert person is not None
            method = notify.add_contact_method(
                s, clock, person_id=person.id, channel="voice", config={"to": ENGINEER_PHONE}
            )
            notify.add_notification_rule(s, clock, person_id=person.id, contact_method_id=method.id, delay_minutes=0)
    finally:
        engine.dispose()


def _delivery_state(desk: Deployment, call_sid: str) -> str | None:
    from sqlalchemy import select

    from zhiban.notify.store import NotificationRow
    from zhiban.store.db import make_engine, session_factory

    engine = make_engine(desk.db_url)
    try:
        with session_factory(engine)() as s:
            return s.scalar(select(NotificationRow.state).where(NotificationRow.provider_id == call_sid))
    finally:
        engine.dispose()


def test_a_night_voicemail_pages_and_a_keypress_acknowledges(tmp_path: Path) -> None:
    mailbox = Mailbox()
    with FakeTwilioApi().running() as twilio:
        port = twilio.url.rpartition(":")[2]
        twilio_url = f"twilio://{ACCOUNT_SID}:{AUTH_TOKEN}@127.0.0.1:{port}?from=%2B15550109999&scheme=http"
        desk = HotlineDeployment(
            tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", mailbox, SATURDAY_3AM, twilio_url=twilio_url
        )
        desk.start("serve", "serve", "--port", str(desk.port))
        try:
            desk.wait_ready()
            who = desk.on_call("enterprise")
            [on_call] = who["plan"]["people"]
            _voice_rule(desk, on_call["email"])
            [customer] = desk.tokens("dev@liveco.demo")
            with httpx.Client(base_url=desk.base, timeout=30) as http:
                sid = "CA" + "e2e0" * 8
                rung = _signed(http, desk.base, VOICE, {"CallSid": sid, "From": LIVECO_DEV, "To": ENTERPRISE_LINE})
                assert rung.status_code == 200, rung.text
                assert "LiveCo" in said(parse(rung.text))[1]
                left = _signed(http, desk.base, f"{VOICE}/menu", {"CallSid": sid, "Digits": "2"})
                assert [el.tag for el in parse(left.text)] == ["Say", "Record", "Hangup"]
                recording = {"CallSid": sid, "RecordingSid": "RE" + "e2e0" * 8, "RecordingStatus": "completed",
                             "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE1",
                             "RecordingDuration": "40"}  # fmt: skip
                filed_at = time.monotonic()
                assert _signed(http, desk.base, f"{VOICE}/recording", recording).status_code == 204
                headers = {"Authorization": f"Bearer {customer}"}
                listed = http.get("/api/v1/tickets", headers=headers).json()
                [ticket] = [t for t in listed if t["channel"] == "phone"]  # the demo's LiveCo has tickets already
                assert (ticket["channel"], ticket["priority"]) == ("phone", "P2")
                assert ticket["on_duty"] is not None and ticket["on_duty"]["acknowledged_at"] is None

                # The worker calls the engineer through "Twilio", reading the page inside a one-key <Gather>.
                wait_for(lambda: bool(twilio.calls), f"the page call\n{desk.logs()}", 120)
                called_after = time.monotonic() - filed_at
                [call] = twilio.calls
                assert call["To"] == [ENGINEER_PHONE]
                [gather] = parse(call["Twiml"][0]).iter("Gather")
                assert gather.get("action") == desk.base + PAGE_ACK_PATH
                call_sid = "CA" + "1".zfill(32)
                # Twilio calls back once the engineer listened: by then the worker recorded Twilio's answer.
                wait_for(lambda: _delivery_state(desk, call_sid) == "sent", f"the call's sid\n{desk.logs()}", 60)
                answered = {"CallSid": call_sid, "CallStatus": "in-progress"}
                assert _signed(http, desk.base, PAGE_STATUS_PATH, answered).status_code == 204
                pressed = _signed(http, desk.base, PAGE_ACK_PATH, {"CallSid": call_sid, "Digits": "1"})
                assert pressed.status_code == 200, pressed.text
                assert [el.tag for el in parse(pressed.text)] == ["Say", "Hangup"]

                # The customer sees who acknowledged.
                seen = http.get(f"/api/v1/tickets/{ticket['id']}", headers=headers).json()["on_duty"]
                assert seen["acknowledged_by"] == on_call["name"] and seen["acknowledged_at"] is not None
                time.sleep(2)  # a second call would come within the worker's poll
                assert len(twilio.calls) == 1
                # The recording's link and the caller are on the ticket.
                body = http.get(f"/api/v1/tickets/{ticket['id']}", headers=headers).json()["comments"][0]["body"]
                assert "Recordings/RE1" in body and LIVECO_DEV in body
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{desk.logs()}") from exc
        finally:
            desk.stop()
            mailbox.close()
    print(f"voicemail filed -> page call placed: {called_after:.2f} s")
