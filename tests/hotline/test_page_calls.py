"""Voice pages to engineers: the call Twilio is asked to place reads the page inside a <Gather>, the engineer's
"1" acknowledges the incident, and Twilio's status callbacks update the message's delivery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.twiml.voice_response import VoiceResponse

from tests.hotline.kit import ACCOUNT_SID, AUTH_TOKEN, BASE, VOICE, FakeTwilioApi, parse, post, said, shape
from tests.hotline.test_hotline import ALICE_PHONE, setup
from tests.incidents.incident_kit import drain, worker
from tests.tenancy import World, bearer
from zhiban.desk import Desk
from zhiban.incidents.store import IncidentEventRow, IncidentRow
from zhiban.notify import service as notify
from zhiban.notify.channels.phone import PAGE_ACK_PATH, PAGE_STATUS_PATH, TwilioProvider
from zhiban.notify.registry import ChannelDeps
from zhiban.notify.store import NotificationRow

ENGINEER_PHONE = "+8613700001111"


@pytest.fixture
def twilio_api(allow_loopback_egress: None) -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi().running() as api:
        yield api


def page_by_phone(client: TestClient, desk: Desk, api: FakeTwilioApi) -> tuple[World, str, NotificationRow]:
    """Alice presses 1 at 03:00; the engineer on duty is called through "Twilio"; the call's message row."""
    world, primary = setup(client, desk)
    provider = TwilioProvider(
        ACCOUNT_SID, AUTH_TOKEN, "+15550109999", base_url=api.url, clock=desk.clock, callback_base=BASE
    )
    notify.set_channel_deps(ChannelDeps(clock=desk.clock, voice_provider=provider))
    with desk.transaction() as s:
        method = notify.add_contact_method(
            s, desk.clock, person_id=primary, channel="voice", config={"to": ENGINEER_PHONE}
        )
        notify.add_notification_rule(s, desk.clock, person_id=primary, contact_method_id=method.id, delay_minutes=0)
    sid = "CA" + "7" * 32
    post(client, VOICE, {"CallSid": sid, "From": ALICE_PHONE, "To": "+15550100001"})
    post(client, f"{VOICE}/menu", {"CallSid": sid, "Digits": "1"})
    drain(worker(desk))
    with desk.sessions() as s:
        rows = list(s.scalars(select(NotificationRow).where(NotificationRow.channel == "voice")))
    assert len(rows) == 1 and rows[0].state == "sent", [(r.state, r.last_error) for r in rows]
    return world, primary, rows[0]


def test_the_page_call_reads_the_page_in_a_gather_with_status_callbacks(
    client: TestClient, desk: Desk, twilio_api: FakeTwilioApi
) -> None:
    page_by_phone(client, desk, twilio_api)
    assert len(twilio_api.calls) == 1
    form = twilio_api.calls[0]
    assert form["To"] == [ENGINEER_PHONE] and form["StatusCallback"] == [BASE + PAGE_STATUS_PATH]
    assert set(form["StatusCallbackEvent"]) == {"initiated", "ringing", "answered", "completed"}
    expected = VoiceResponse()
    gather = expected.gather(action=BASE + PAGE_ACK_PATH, method="POST", num_digits=1, timeout=8)
    gather.say("page", language="en-US")
    gather.pause(length=1)
    gather.say("page", language="en-US")
    twiml = parse(form["Twiml"][0])
    assert shape(twiml) == shape(parse(str(expected)))
    assert "Press 1 to acknowledge" in said(twiml)[0] and "Ticket #" in said(twiml)[0]


def test_press_1_on_the_page_call_acknowledges_the_incident(
    client: TestClient, desk: Desk, twilio_api: FakeTwilioApi
) -> None:
    world, primary, row = page_by_phone(client, desk, twilio_api)
    assert row.provider_id is not None
    # A forged "1" (signed with another token) is refused and changes nothing.
    forged = post(client, PAGE_ACK_PATH, {"CallSid": row.provider_id, "Digits": "1"}, token="forged")
    assert forged.status_code == 403
    with desk.sessions() as s:
        assert s.get(IncidentRow, row.subject_id).status == "triggered"
    pressed = post(client, PAGE_ACK_PATH, {"CallSid": row.provider_id, "Digits": "1", "To": ENGINEER_PHONE})
    assert pressed.status_code == 200, pressed.text
    expected = VoiceResponse()
    expected.say("acknowledged", language="en-US")
    expected.hangup()
    assert shape(parse(pressed.text)) == shape(parse(str(expected)))
    with desk.sessions() as s:
        incident = s.get(IncidentRow, row.subject_id)
        assert incident.status == "acknowledged" and incident.acknowledged_by == primary
    # The customer sees who acknowledged, as after the mailed ack link.
    ticket = client.get("/api/v1/tickets", headers=bearer(world.alice_token)).json()[0]
    assert ticket["on_duty"]["acknowledged_by"] == "Primary"
    # A retried keypress answers the same and acknowledges nothing twice.
    again = post(client, PAGE_ACK_PATH, {"CallSid": row.provider_id, "Digits": "1", "To": ENGINEER_PHONE})
    assert again.text == pressed.text
    # A call the desk never placed is not a page.
    stray = post(client, PAGE_ACK_PATH, {"CallSid": "CA" + "9" * 32, "Digits": "1"})
    assert stray.status_code == 200 and "not a page" in said(parse(stray.text))[0]


def test_status_callbacks_update_the_delivery(client: TestClient, desk: Desk, twilio_api: FakeTwilioApi) -> None:
    _world, _primary, row = page_by_phone(client, desk, twilio_api)
    sid = row.provider_id
    assert sid is not None

    def state() -> tuple[str, str | None]:
        with desk.sessions() as s:
            found = s.get(NotificationRow, row.id)
            return found.state, found.last_error

    assert post(client, PAGE_STATUS_PATH, {"CallSid": sid, "CallStatus": "ringing"}).status_code == 204
    assert state() == ("sent", None)
    assert post(client, PAGE_STATUS_PATH, {"CallSid": sid, "CallStatus": "no-answer"}).status_code == 204
    assert state() == ("failed", "voice: call no-answer")
    with desk.sessions() as s:  # the responders see it on the incident's timeline
        events = s.scalars(select(IncidentEventRow).where(IncidentEventRow.incident_id == row.subject_id)).all()
        assert [e.body for e in events if e.kind == "page_failed"] == ["voice: voice: call no-answer"]
    # A bad signature changes nothing.
    forged = post(client, PAGE_STATUS_PATH, {"CallSid": sid, "CallStatus": "completed"}, token="forged")
    assert forged.status_code == 403 and state()[0] == "failed"
    # A message that failed stays failed; one whose hand-off was cut short learns it was answered.
    assert post(client, PAGE_STATUS_PATH, {"CallSid": sid, "CallStatus": "completed"}).status_code == 204
    assert state()[0] == "failed"
    with desk.transaction() as s:
        s.get(NotificationRow, row.id).state = "unknown"
    assert post(client, PAGE_STATUS_PATH, {"CallSid": sid, "CallStatus": "completed"}).status_code == 204
    assert state() == ("sent", None)
