"""The hotline over Twilio's webhooks, signed by twilio's own RequestValidator, its TwiML held to what twilio's
VoiceResponse builds. The test clock starts on Saturday 03:00 Asia/Shanghai (19:00 UTC Friday)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from twilio.twiml.voice_response import VoiceResponse

from tests.hotline.kit import BASE, LINE, VOICE, parse, post, said, shape
from tests.incidents.incident_kit import build as build_paging
from tests.tenancy import World, bearer, build_world
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.hotline.store import HotlineCallRow, HotlineStepRow
from zhiban.incidents import service as incidents
from zhiban.incidents.store import IncidentRow
from zhiban.notify.store import NotificationRow
from zhiban.tickets.store import TicketRow

SERVICE = "media network cn-east"
ALICE_PHONE = "+8613800138000"
STRANGER = "+8613911112222"
PROBLEMS = "https://zhiban.dev/problems/"


def setup(client: TestClient, desk: Desk, *, mode: str = "standby") -> tuple[World, str]:
    """LiveCo on the Enterprise plan (standby: P1 and P2 page at any hour), its hotline, Alice's phone number."""
    world = build_world(desk)
    paging = build_paging(desk)  # a policy paging "primary" at once, then "secondary"
    admin = bearer(world.admin_token)
    support = {"mode": mode, "paging_service": SERVICE}
    assert client.put("/api/v1/sla/plans/enterprise", json={"support": support}, headers=admin).status_code == 200
    line = {"plan": "enterprise", "language": "en", "label": "LiveCo"}
    put = client.put(f"/api/v1/hotline/lines/{quote(LINE)}", json=line, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json() == {"number": LINE, "plan": "enterprise", "language": "en", "label": "LiveCo"}
    phone = client.put(f"/api/v1/people/{world.alice_id}/phone", json={"phone": "+86 138-0013-8000"}, headers=admin)
    assert phone.status_code == 200 and phone.json()["phone"] == ALICE_PHONE, phone.text
    return world, paging.primary


def ring(client: TestClient, sid: str, caller: str = ALICE_PHONE, line: str = LINE) -> object:
    return post(client, VOICE, {"CallSid": sid, "AccountSid": "AC" + "5" * 32, "From": caller, "To": line,
                                "CallStatus": "ringing", "Direction": "inbound"})  # fmt: skip


def tickets(desk: Desk) -> list[TicketRow]:
    with desk.sessions() as s:
        return list(s.scalars(select(TicketRow).order_by(TicketRow.id)))


def pages_to(desk: Desk, person_id: str) -> int:
    with desk.sessions() as s:
        mine = (NotificationRow.person_id == person_id) & (NotificationRow.subject_kind == "incident")
        return s.scalar(select(func.count()).where(mine)) or 0


def count(desk: Desk, table: type) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def menu_twiml(*, first: bool) -> VoiceResponse:
    """The known caller's answer as twilio's classes build it: greeting, a one-key menu, else the voicemail."""
    r = VoiceResponse()
    if first:
        r.say("greeting", language="en-US")
    gather = r.gather(action=f"{BASE}{VOICE}/menu", method="POST", timeout=8, num_digits=1)
    gather.say("hello", language="en-US")
    gather.say("menu", language="en-US")
    return voicemail_twiml(r)


def voicemail_twiml(r: VoiceResponse) -> VoiceResponse:
    r.say("leave a message", language="en-US")
    r.record(
        action=f"{BASE}{VOICE}/recorded", method="POST", max_length=180, play_beep=True,
        recording_status_callback=f"{BASE}{VOICE}/recording", recording_status_callback_method="POST",
    )  # fmt: skip
    r.hangup()
    return r


def test_enterprise_press_1_at_night_files_a_p1_and_pages_once(client: TestClient, desk: Desk) -> None:
    world, primary = setup(client, desk)
    answer = ring(client, "CA" + "a" * 32)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    root = parse(answer.text)
    assert shape(root) == shape(parse(str(menu_twiml(first=True))))
    assert "Alice" in said(root)[1] and "press 1" in said(root)[2]

    pressed = post(client, f"{VOICE}/menu", {"CallSid": "CA" + "a" * 32, "Digits": "1", "From": ALICE_PHONE})
    assert pressed.status_code == 200, pressed.text
    filed = tickets(desk)
    assert len(filed) == 1
    ticket = filed[0]
    assert (ticket.priority, ticket.channel, ticket.requester_id) == ("P1", "phone", world.alice_id)
    # Duty decided by plan, priority and calendar (standby, P1, Saturday 03:00): the engineer on duty is paged.
    assert pages_to(desk, primary) == 1 and count(desk, IncidentRow) == 1
    seen = client.get(f"/api/v1/tickets/{ticket.id}", headers=bearer(world.alice_token)).json()
    assert seen["on_duty"]["paged_at"] is not None and seen["channel"] == "phone"
    # The caller is told so, and holds while the engineer is woken.
    root = parse(pressed.text)
    assert shape(root) == shape(parse(str(hold_twiml())))
    assert "being paged" in said(root)[0] and " ".join(str(ticket.id)) in said(root)[0]

    # Twilio retries both webhooks: the same answers, nothing filed or paged again.
    assert post(client, f"{VOICE}/menu", {"CallSid": "CA" + "a" * 32, "Digits": "1", "From": ALICE_PHONE}).text == (
        pressed.text
    )
    assert ring(client, "CA" + "a" * 32).text == answer.text
    assert len(tickets(desk)) == 1 and pages_to(desk, primary) == 1 and count(desk, IncidentRow) == 1

    # The details left after the tone join the same ticket.
    recording = {"CallSid": "CA" + "a" * 32, "RecordingSid": "RE" + "1" * 32, "RecordingStatus": "completed",
                 "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC5/Recordings/RE111",
                 "RecordingDuration": "21"}  # fmt: skip
    assert post(client, f"{VOICE}/recording", recording).status_code == 204
    assert post(client, f"{VOICE}/recording", recording).status_code == 204
    view = client.get(f"/api/v1/tickets/{ticket.id}", headers=bearer(world.agent_token)).json()
    voicemails = [c for c in view["comments"] if "Recordings/RE111" in c["body"]]
    assert len(voicemails) == 1 and ALICE_PHONE in voicemails[0]["body"] and len(tickets(desk)) == 1


def hold_twiml() -> VoiceResponse:
    r = VoiceResponse()
    r.say("paged", language="en-US")
    r.say("hold", language="en-US")
    r.redirect(f"{BASE}{VOICE}/wait?round=0", method="POST")
    return r


def test_the_caller_holds_and_is_connected_to_the_engineer_who_acknowledges(client: TestClient, desk: Desk) -> None:
    world, primary = setup(client, desk)
    admin = bearer(world.admin_token)
    assert client.put(f"/api/v1/people/{primary}/phone", json={"phone": "+8613700002222"}, headers=admin).is_success
    sid = "CA" + "8" * 32
    ring(client, sid)
    post(client, f"{VOICE}/menu", {"CallSid": sid, "Digits": "1"})
    # Not acknowledged yet: another pause on hold.
    held = post(client, f"{VOICE}/wait?round=0", {"CallSid": sid})
    assert held.status_code == 200, held.text
    waiting = parse(held.text)
    expected = VoiceResponse()
    expected.pause(length=10)
    expected.redirect(f"{BASE}{VOICE}/wait?round=1", method="POST")
    assert shape(waiting) == shape(parse(str(expected)))
    # The query string is signed too: a round the provider was not sent to is refused.
    forged = post(client, f"{VOICE}/wait?round=1", {"CallSid": sid}, signed_url=f"{BASE}{VOICE}/wait?round=2")
    assert forged.status_code == 403
    [ticket] = tickets(desk)
    on_duty = client.get(f"/api/v1/tickets/{ticket.id}", headers=bearer(world.agent_token)).json()["on_duty"]
    with desk.transaction() as s:
        incidents.acknowledge_as(s, desk.clock, on_duty["incident_id"], primary, via="test")
    connecting = parse(post(client, f"{VOICE}/wait?round=1", {"CallSid": sid}).text)
    expected = VoiceResponse()
    expected.say("connecting", language="en-US")
    expected.dial(caller_id=LINE, timeout=25).number("+8613700002222")
    expected.hangup()
    assert shape(connecting) == shape(parse(str(expected)))
    assert "Primary" in said(connecting)[0]
    assert [n.text for n in connecting.iter("Number")] == ["+8613700002222"]


def test_nobody_acknowledges_while_the_caller_holds(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    sid = "CA" + "9" * 32
    ring(client, sid)
    post(client, f"{VOICE}/menu", {"CallSid": sid, "Digits": "1"})
    last = parse(post(client, f"{VOICE}/wait?round=5", {"CallSid": sid}).text)
    expected = VoiceResponse()
    assert shape(last) == shape(parse(str(voicemail_twiml(expected))))  # then the details go on the ticket


def test_a_queue_plan_files_the_p1_but_wakes_nobody(client: TestClient, desk: Desk) -> None:
    _world, primary = setup(client, desk, mode="queue")
    ring(client, "CA" + "b" * 32)
    pressed = post(client, f"{VOICE}/menu", {"CallSid": "CA" + "b" * 32, "Digits": "1"})
    assert [t.priority for t in tickets(desk)] == ["P1"] and pages_to(desk, primary) == 0
    assert "being paged" not in said(parse(pressed.text))[0] and "as soon as possible" in said(parse(pressed.text))[0]


def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(client: TestClient, desk: Desk) -> None:
    _world, primary = setup(client, desk)
    params = {"CallSid": "CA" + "c" * 32, "From": ALICE_PHONE, "To": LINE}
    refusals = [
        post(client, VOICE, params, token="not-the-auth-token"),  # another account's token
        post(client, VOICE, params, signature=""),  # none at all
        post(client, VOICE, params, signed_url=f"http://testserver{VOICE}"),  # the URL the app sees, not Twilio's
        post(client, VOICE, params, send={**params, "From": "+8613900000000"}),  # a parameter changed after signing
    ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == PROBLEMS + "bad-signature"
    # A forged "press 1" for a call that exists files nothing either.
    assert ring(client, "CA" + "c" * 32).status_code == 200
    forged = post(client, f"{VOICE}/menu", {"CallSid": "CA" + "c" * 32, "Digits": "1"}, token="guess")
    assert forged.status_code == 403
    assert tickets(desk) == [] and pages_to(desk, primary) == 0 and count(desk, HotlineStepRow) == 1


def test_the_public_url_may_carry_the_default_port(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    # Twilio's validator accepts the URL with or without the scheme's default port: so does the desk.
    signed = post(client, VOICE, {"CallSid": "CA" + "d" * 32, "From": ALICE_PHONE, "To": LINE},
                  signed_url=f"https://desk.example.com:443{VOICE}")  # fmt: skip
    assert signed.status_code == 200, signed.text


def test_unknown_numbers_and_calls_are_refused_clearly(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    unknown = ring(client, "CA" + "e" * 32, line="+15550100999")
    assert unknown.status_code == 404 and unknown.json()["type"] == PROBLEMS + "unknown-hotline-number"
    assert count(desk, HotlineCallRow) == 0
    stray = post(client, f"{VOICE}/menu", {"CallSid": "CA" + "f" * 32, "Digits": "1"})
    assert stray.status_code == 404 and stray.json()["type"] == PROBLEMS + "unknown-call"
    no_sid = post(client, VOICE, {"From": ALICE_PHONE, "To": LINE})
    assert no_sid.status_code == 422 and tickets(desk) == []


def test_bodies_are_bounded(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    huge = post(client, VOICE, {"CallSid": "CA" + "1" * 32, "To": LINE, "Pad": "x" * 20_000})
    assert huge.status_code == 413
    many = post(client, VOICE, {"CallSid": "CA" + "1" * 32, **{f"F{i}": "1" for i in range(150)}})
    assert many.status_code == 422
    assert count(desk, HotlineCallRow) == 0


def test_an_unknown_caller_types_a_ticket_number_then_leaves_a_voicemail(client: TestClient, desk: Desk) -> None:
    world, primary = setup(client, desk)
    mine = client.post("/api/v1/tickets", json={"subject": "卡顿", "body": "room 1", "priority": "P4"},
                       headers=bearer(world.alice_token)).json()  # fmt: skip
    sid = "CA" + "2" * 32
    answer = parse(ring(client, sid, caller=STRANGER).text)
    expected = VoiceResponse()
    expected.say("greeting", language="en-US")
    expected.gather(action=f"{BASE}{VOICE}/identify", method="POST", timeout=6, finish_on_key="#").say(
        "enter your ticket number", language="en-US"
    )
    assert shape(answer) == shape(parse(str(expected)))

    # Another plan's ticket (ClassMate is on Standard, this is the Enterprise line) does not identify the caller.
    theirs = client.post("/api/v1/tickets", json={"subject": "黑屏", "body": "room 2", "priority": "P4"},
                         headers=bearer(world.bob_token)).json()  # fmt: skip
    other = post(client, f"{VOICE}/identify", {"CallSid": sid, "Digits": str(theirs["id"])})
    assert [el.tag for el in parse(other.text)] == ["Say", "Gather"]
    wrong = post(client, f"{VOICE}/identify", {"CallSid": sid, "Digits": "987654"})
    # Twilio retried that webhook: the same answer, and no try spent (the right number below is the third).
    assert post(client, f"{VOICE}/identify", {"CallSid": sid, "Digits": "987654"}).text == wrong.text
    assert "987654" in said(parse(wrong.text))[0].replace(" ", "")
    assert [el.tag for el in parse(wrong.text)] == ["Say", "Gather"]
    right = post(client, f"{VOICE}/identify", {"CallSid": sid, "Digits": str(mine["id"])})
    assert shape(parse(right.text)) == shape(parse(str(menu_twiml(first=False))))
    # "2": the voicemail, which becomes a ticket of Alice's (the ticket's requester) with the link and the caller.
    left = post(client, f"{VOICE}/menu", {"CallSid": sid, "Digits": "2"})
    assert [el.tag for el in parse(left.text)] == ["Say", "Record", "Hangup"]
    done = post(client, f"{VOICE}/recorded", {"CallSid": sid, "RecordingUrl": "https://api.twilio.com/r/RE2"})
    assert [el.tag for el in parse(done.text)] == ["Say", "Hangup"]
    url = "https://api.twilio.com/2010-04-01/Accounts/AC5/Recordings/RE" + "2" * 32
    recording = {"CallSid": sid, "RecordingSid": "RE" + "2" * 32, "RecordingUrl": url,
                 "RecordingStatus": "completed", "RecordingDuration": "34"}  # fmt: skip
    for _ in range(2):  # Twilio retried the callback
        assert post(client, f"{VOICE}/recording", recording).status_code == 204
    filed = tickets(desk)
    assert len(filed) == 3
    voicemail = client.get(f"/api/v1/tickets/{filed[2].id}", headers=bearer(world.alice_token)).json()
    body = voicemail["comments"][0]["body"]
    assert url in body and STRANGER in body and "34 s" in body
    assert (voicemail["channel"], voicemail["priority"], voicemail["requester_id"]) == ("phone", "P2", world.alice_id)
    # A P2 on a standby plan at 03:00 pages too, as it would from the portal.
    assert pages_to(desk, primary) == 1


def test_three_wrong_numbers_end_the_call(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    sid = "CA" + "3" * 32
    ring(client, sid, caller="anonymous")
    for attempt, digits in enumerate(("1", "22", "333")):
        answer = parse(post(client, f"{VOICE}/identify", {"CallSid": sid, "Digits": digits}).text)
        assert [el.tag for el in answer] == (["Say", "Gather"] if attempt < 2 else ["Say", "Say", "Hangup"])
    # An unidentified call cannot file by pressing 1 either.
    pressed = post(client, f"{VOICE}/menu", {"CallSid": sid, "Digits": "1"})
    assert [el.tag for el in parse(pressed.text)] == ["Say", "Hangup"] and tickets(desk) == []


def test_lines_are_for_admins_and_checked(client: TestClient, desk: Desk) -> None:
    world, _ = setup(client, desk)
    admin, agent = bearer(world.admin_token), bearer(world.agent_token)
    assert client.get("/api/v1/hotline/lines", headers=agent).status_code == 403
    assert client.put(f"/api/v1/hotline/lines/{quote('+15550100002')}", json={"plan": "premium"},
                      headers=agent).status_code == 403  # fmt: skip
    bad_number = client.put("/api/v1/hotline/lines/12345", json={"plan": "premium"}, headers=admin)
    assert bad_number.status_code == 422
    no_plan = client.put(f"/api/v1/hotline/lines/{quote('+15550100002')}", json={"plan": "gold"}, headers=admin)
    assert no_plan.status_code == 422 and "gold" in no_plan.json()["detail"]
    assert [line["number"] for line in client.get("/api/v1/hotline/lines", headers=admin).json()] == [LINE]
    bad_phone = client.put(f"/api/v1/people/{world.bob_id}/phone", json={"phone": "12345"}, headers=admin)
    assert bad_phone.status_code == 422
    assert client.delete(f"/api/v1/hotline/lines/{quote(LINE)}", headers=admin).status_code == 204
    assert ring(client, "CA" + "4" * 32).status_code == 404


def test_without_a_twilio_account_no_webhook_is_taken(engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    from zhiban.core.settings import Settings
    from zhiban.web.app import create_app

    settings = Settings(database_url=str(engine.url), var_dir=str(tmp_path / "var"), demo=False, simulate=False)
    bare = Desk(settings=settings, clock=clock, engine=engine, secret_key="test-secret-key")
    with TestClient(create_app(bare)) as client:
        refused = ring(client, "CA" + "5" * 32)
    assert refused.status_code == 403 and refused.json()["type"] == PROBLEMS + "hotline-not-configured"
