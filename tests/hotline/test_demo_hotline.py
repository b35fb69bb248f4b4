"""The demo world's hotline: LiveCo's developer rings the Enterprise line at 03:00 and presses 1."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.hotline.kit import VOICE, parse, post, said
from zhiban.demo.seed import DEMO_CALLERS, DEMO_LINES, seed_demo_world
from zhiban.desk import Desk
from zhiban.hotline import service as hotline
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.identity.service import principal_of


def test_the_demo_enterprise_line_files_and_pages(client: TestClient, desk: Desk) -> None:
    with desk.transaction() as s:
        seed_demo_world(s, desk.clock)
        admin = identity.person_with_email(s, "admin@zhiban.demo")
        assert admin is not None and admin.role == Role.ADMIN
        lines = {line.number: line.plan for line in hotline.list_lines(s, principal_of(admin))}
    assert lines == {number: plan for number, plan, *_ in DEMO_LINES}
    sid = "CA" + "d" * 32
    answer = parse(post(client, VOICE, {"CallSid": sid, "From": DEMO_CALLERS["liveco"], "To": "+15550100001"}).text)
    assert {el.get("language") for el in answer.iter("Say")} == {"zh-CN"}
    assert "LiveCo" in said(answer)[1]  # known by the number on LiveCo's developer
    pressed = parse(post(client, f"{VOICE}/menu", {"CallSid": sid, "Digits": "1"}).text)
    assert "正在呼叫值班工程师" in said(pressed)[0]  # Enterprise is standby in the demo: the on-call engineer is paged
