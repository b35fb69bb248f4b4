"""Chat groups end to end with the real processes: `zhiban serve` (web and worker in one) with the demo, a local
server answering like Feishu's open API, and events encrypted and signed as Feishu sends them: a group message ->
ticket -> an agent's public reply appears in the thread exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.chat.chat_kit import FEISHU_APP, FEISHU_BOT, FEISHU_KEY, FEISHU_SECRET, FEISHU_TOKEN, feishu_api
from tests.chat.chat_kit import feishu_message as message_event
from tests.chat.chat_kit import feishu_request as signed
from tests.duty.desk_processes import Deployment, wait_for
from tests.notify.notify_fakes import provider_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("desk-processes")]


class _RealClock:
    """What `feishu_request` reads the time from: the deployment runs on the real clock."""

    class clock:
        @staticmethod
        def now() -> object:
            from datetime import UTC, datetime

            return datetime.now(UTC)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_feishu_group_message_becomes_a_ticket_and_the_reply_appears_once(tmp_path: Path) -> None:
    desk = Deployment(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", None)
    with provider_server(feishu_api()) as feishu:
        desk.start("serve", "serve", "--port", str(desk.port))
        try:
            desk.wait_ready()
            [admin_token] = desk.tokens("admin@zhiban.demo", scopes=("admin",))
            [agent_token] = desk.tokens("li.na@zhiban.demo")
            with httpx.Client(base_url=desk.base, timeout=30) as http:
                admin = _bearer(admin_token)
                app = {
                    "app_id": FEISHU_APP,
                    "app_secret": FEISHU_SECRET,
                    "verification_token": FEISHU_TOKEN,
                    "encrypt_key": FEISHU_KEY,
                    "bot_user_id": FEISHU_BOT,
                    "api_url": feishu.url,
                }
                assert http.put("/api/v1/chat/apps/feishu", json=app, headers=admin).status_code == 200
                group = {"platform": "feishu", "group_id": "oc_liveco_group", "organization": "liveco"}
                group["requester"] = "dev@liveco.demo"
                assert http.post("/api/v1/chat/groups", json=group, headers=admin).status_code == 201
                root = "om_e2e_root"
                body, headers = signed(_RealClock(), message_event("ev_e2e_1", "推流失败 room-8812 宕机", root))  # type: ignore[arg-type]
                filed = http.post("/api/v1/chat/feishu/events", content=body, headers=headers)
                assert filed.status_code == 200 and filed.json()["action"] == "created", filed.text
                ticket_id = filed.json()["ticket_id"]
                ticket = http.get(f"/api/v1/tickets/{ticket_id}", headers=admin).json()
                assert ticket["priority"] == "P1" and ticket["channel"] == "chat"
                # 宕机 is urgent: P1 under LiveCo's standby plan pages the engineer on duty, by duty's own path.
                assert ticket["on_duty"] is not None and ticket["on_duty"]["incident_id"]
                # Feishu redelivers: the same request again files nothing.
                again = http.post("/api/v1/chat/feishu/events", content=body, headers=headers)
                assert again.json()["action"] == "duplicate"
                said = http.post(
                    f"/api/v1/tickets/{ticket_id}/comments",
                    json={"body": "已切换边缘节点，请再试 please retry"},
                    headers=_bearer(agent_token),
                )
                assert said.status_code == 201, said.text

                def replies() -> list[str]:
                    return [
                        json.loads(r.json()["content"])["text"] for r in feishu.received if r.path.endswith("/reply")
                    ]

                wait_for(lambda: len(replies()) >= 1, "the reply in the Feishu thread", 120)
                time.sleep(3)  # a second post would come from a repeated job: none does
                [reply] = replies()
                assert "已切换边缘节点，请再试 please retry" in reply
                assert [r.path for r in feishu.received if r.path.endswith("/reply")] == [
                    f"/open-apis/im/v1/messages/{root}/reply"
                ]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{desk.logs()}") from exc
        finally:
            desk.stop()
