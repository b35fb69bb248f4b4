"""Two copies of one webhook at the same moment (a provider's retry racing the original): one answer, one ticket."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.hotline.kit import AUTH_TOKEN, BASE, LINE, VOICE
from tests.hotline.test_hotline import ALICE_PHONE, setup, tickets
from zhiban.desk import Desk
from zhiban.hotline import service
from zhiban.hotline.model import CallEvent, Urls
from zhiban.hotline.twilio_voice import TwilioVoice

URLS = Urls(*(f"{BASE}{VOICE}/{step}" for step in ("menu", "identify", "recorded", "recording", "wait")))


def _at_once(desk: Desk, step: Callable[..., str], event: CallEvent, copies: int = 4) -> list[str]:
    provider = TwilioVoice(AUTH_TOKEN)
    answers: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(copies)

    def one() -> None:
        start.wait()
        try:
            with desk.transaction() as s:
                answers.append(step(s, desk.clock, provider, event, URLS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return answers


def test_copies_of_a_call_and_of_its_press_1_file_once(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    sid = "CA" + "c0ffee" * 5 + "00"
    rung = _at_once(desk, service.incoming, CallEvent(call_id=sid, from_number=ALICE_PHONE, to_number=LINE))
    assert len(rung) == 4 and len(set(rung)) == 1
    pressed = _at_once(desk, service.menu, CallEvent(call_id=sid, digits="1"))
    assert len(pressed) == 4 and len(set(pressed)) == 1
    assert [t.priority for t in tickets(desk)] == ["P1"]
