"""On duty end to end, with real processes: `zhiban serve` (or `web` + `worker` + `mail listen`) with the demo, on
a test clock at Saturday 03:00 Asia/Shanghai, and a real SMTP server receiving the pages.

Tickets are filed by customers as they would: through the API and by e-mail into the desk's inbound SMTP. The
pages are counted where they land, in the SMTP server, by incident and escalation step (a page's Message-ID is
derived from its idempotency key: incident × step × person × channel). The engineer acknowledges by the link in
the mailed page, as a person clicking it, and the customer sees it on the ticket.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.duty.desk_processes import MAIL_FROM, Deployment, Mailbox, Received, mail_ticket, wait_for
from zhiban.incidents.escalation import step_key
from zhiban.notify.channels.email import derived_message_id

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("desk-processes")]

SATURDAY_3AM = "2026-12-12T03:00:00+08:00"  # Friday 19:00 UTC; the demo's Enterprise plan is standby 24x7
SUBJECT = "直播卡顿 room-8812"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Customers:
    """The customers of the flow: the demo's LiveCo (Enterprise, standby) and Chatterbox (Basic, queue), and a
    Premium (dedicated) customer in Shanghai added through the API, for whom 03:00 is outside business hours
    (the demo's Premium customer is in New York, where it is Friday 14:00)."""

    def __init__(self, desk: Deployment, http: httpx.Client) -> None:
        [admin_token] = desk.tokens("admin@zhiban.demo", scopes=("admin",))
        admin = _bearer(admin_token)
        org = http.post(
            "/api/v1/organizations",
            json={"name": "NightOwl 夜猫直播", "slug": "nightowl", "plan": "premium", "timezone": "Asia/Shanghai"},
            headers=admin,
        )
        assert org.status_code == 201, org.text
        person = {"email": "dev@nightowl.test", "name": "NightOwl dev", "role": "customer"}
        made = http.post("/api/v1/people", json={**person, "organization_id": org.json()["id"]}, headers=admin)
        assert made.status_code == 201, made.text
        self.liveco, self.chatterbox, self.nightowl = desk.tokens(
            "dev@liveco.demo", "dev@chatterbox.demo", "dev@nightowl.test"
        )


def _file(http: httpx.Client, token: str, priority: str, subject: str = SUBJECT) -> dict[str, Any]:
    made = http.post(
        "/api/v1/tickets",
        json={"subject": subject, "body": "viewers stutter since 02:50", "priority": priority},
        headers=_bearer(token),
    )
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


def _ticket(http: httpx.Client, token: str, ticket_id: int) -> dict[str, Any]:
    seen = http.get(f"/api/v1/tickets/{ticket_id}", headers=_bearer(token))
    assert seen.status_code == 200, seen.text
    found: dict[str, Any] = seen.json()
    return found


def _page_id(incident_id: str, person_id: str, step: int = 0) -> str:
    """The Message-ID of a page by e-mail (a person without notification rules is paged by e-mail at once)."""
    return derived_message_id(step_key(incident_id, step, f"{person_id}.email", 0), MAIL_FROM)


def run_flow(desk: Deployment, mailbox: Mailbox, after_commit: Callable[[], None]) -> dict[str, float]:
    """File the night's tickets, `after_commit` after each that should page; check pages, the ack, the view.

    Returns seconds from each paging ticket's commit to its page's arrival at the SMTP server.
    """
    who = desk.on_call("enterprise")
    # The test clock: every process of the deployment is at Saturday 03:00 in Shanghai plus the real time the setup
    # took (minutes on a busy machine: migrations, the demo's argon2 hashes), still deep in the night.
    at = datetime.fromisoformat(who["at"])
    assert timedelta(0) <= at - datetime.fromisoformat(SATURDAY_3AM) < timedelta(minutes=30), who["at"]
    assert who["plan"]["mode"] == "standby" and who["plan"]["service_name"] == "P1 tickets"
    [on_call] = who["plan"]["people"]
    with httpx.Client(base_url=desk.base, timeout=30) as http:
        customers = Customers(desk, http)
        committed: dict[str, float] = {}
        tickets: dict[str, dict[str, Any]] = {}
        # LiveCo (Enterprise, standby): a P1 through the API pages at once.
        tickets["liveco api P1"] = _file(http, customers.liveco, "P1")
        committed["liveco api P1"] = time.monotonic()
        after_commit()
        # LiveCo again, by e-mail: the subject's [P1] tag names the priority.
        mail_ticket(desk.inbound_port, "dev@liveco.demo", f"[P1] {SUBJECT} by mail", "全部卡顿", "<e2e-1@liveco.demo>")
        committed["liveco mail P1"] = time.monotonic()  # the inbound listener answered 250 after its commit
        after_commit()
        listed = http.get("/api/v1/tickets", headers=_bearer(customers.liveco)).json()
        [by_mail] = [t for t in listed if t["subject"] == f"{SUBJECT} by mail"]
        assert by_mail["channel"] == "email" and by_mail["priority"] == "P1"
        tickets["liveco mail P1"] = by_mail
        # Chatterbox (Basic, queue): nobody is woken.
        tickets["chatterbox P3"] = _file(http, customers.chatterbox, "P3")
        # NightOwl (Premium, dedicated): off hours, a P2 waits for the morning and a P1 pages.
        tickets["nightowl P2"] = _file(http, customers.nightowl, "P2")
        tickets["nightowl P1"] = _file(http, customers.nightowl, "P1")
        committed["nightowl P1"] = time.monotonic()
        after_commit()
        tokens = {
            "liveco api P1": customers.liveco,
            "liveco mail P1": customers.liveco,
            "chatterbox P3": customers.chatterbox,
            "nightowl P2": customers.nightowl,
            "nightowl P1": customers.nightowl,
        }

        def seen(name: str) -> dict[str, Any]:
            return _ticket(http, tokens[name], tickets[name]["id"])

        # The customer's view names the page as soon as the ticket is filed; which incident is the ticket's.
        incident_of = {}
        for name in committed:
            on_duty = seen(name)["on_duty"]
            assert on_duty is not None and on_duty["acknowledged_at"] is None, (name, on_duty)
            incident_of[name] = on_duty["incident_id"]
        assert len(set(incident_of.values())) == 3  # one incident per ticket
        for name in ("chatterbox P3", "nightowl P2"):
            assert seen(name)["on_duty"] is None, name

        def paged(name: str) -> list[Received]:
            return [p for p in mailbox.pages() if p.incident_id == incident_of[name]]

        # Generous: a replacement worker's start (importing every feature) takes minutes on a machine under load.
        wait_for(lambda: all(paged(n) for n in committed), f"a page per paging ticket\n{desk.logs()}", 300)
        latency = {n: min(p.at for p in paged(n)) - committed[n] for n in committed}
        time.sleep(3)  # a duplicate would come within the worker's poll and retry intervals
        pages = [p for p in mailbox.pages() if p.incident_id in set(incident_of.values())]
        # Exactly one mail per ticket incident and step, to the person on call, none for the other tickets.
        by_step = Counter(str(p.mail["Message-ID"]) for p in pages)
        expected = {_page_id(incident_of[n], on_call["id"]) for n in committed}
        assert set(by_step) == expected and set(by_step.values()) == {1}, (by_step, expected)
        assert all(p.to == (on_call["email"],) for p in pages), [p.to for p in pages]
        for name in committed:
            assert seen(name)["on_duty"]["paged_at"] is not None, name

        # The engineer clicks the mailed link: a confirm page (a GET changes nothing), then the button.
        [page] = paged("liveco api P1")
        link = page.ack_link
        with urllib.request.urlopen(link, timeout=30) as confirm:
            assert confirm.status == 200
        assert seen("liveco api P1")["on_duty"]["acknowledged_at"] is None
        clicked = http.post(link.removeprefix(desk.base))
        assert clicked.status_code == 200, clicked.text
        on_duty = seen("liveco api P1")["on_duty"]
        assert on_duty["acknowledged_at"] is not None and on_duty["acknowledged_by"] == on_call["name"]
        assert on_duty["incident_id"] == incident_of["liveco api P1"]
        # Acknowledged on the test clock: Saturday early morning in Shanghai.
        acked = datetime.fromisoformat(on_duty["acknowledged_at"]).astimezone(UTC)
        assert acked - datetime.fromisoformat(SATURDAY_3AM) < timedelta(minutes=30)
        assert seen("liveco mail P1")["on_duty"]["acknowledged_at"] is None  # the other page still waits
    return latency


def test_tickets_page_the_engineer_on_call_at_3am_saturday(tmp_path: Path, mailbox: Mailbox) -> None:
    """`zhiban serve` alone: web, worker and inbound mail in one process, on SQLite."""
    desk = Deployment(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", mailbox, SATURDAY_3AM)
    desk.start("serve", "serve", "--port", str(desk.port))
    try:
        desk.wait_ready()
        latency = run_flow(desk, mailbox, lambda: None)
    except AssertionError as exc:  # what the processes said is the evidence: keep it with the failure
        raise AssertionError(f"{exc}\n{desk.logs()}") from exc
    finally:
        desk.stop()
    print(f"ticket -> page mail (s): { {k: round(v, 2) for k, v in latency.items()} }")


# PostgreSQL only: the split deployment (web + worker) is the production layout, and SQLite's single-process path
# is the test above; each run starts and kills processes for minutes of the suite's 10.
@pytest.mark.parametrize("database", ["postgres"])
def test_a_worker_killed_between_ticket_and_page_loses_no_page_and_doubles_none(
    tmp_path: Path, mailbox: Mailbox, database: str, request: pytest.FixtureRequest
) -> None:
    """`zhiban web` + `zhiban worker` + `zhiban mail listen`; the worker is SIGKILLed right after each paging ticket
    is committed, and a new one started."""
    db_url = request.getfixturevalue("pg_url") if database == "postgres" else f"sqlite:///{tmp_path / 'desk.db'}"
    desk = Deployment(tmp_path, db_url, mailbox, SATURDAY_3AM, lease_seconds=10)
    desk.cli_here("migrate")
    desk.cli_here("demo")
    workers = ["worker-0"]
    desk.start("worker-0", "worker")
    desk.start("web", "web", "--port", str(desk.port))
    desk.start("mail", "mail", "listen")
    kills: list[bool] = []

    def kill_and_replace() -> None:
        before = len(mailbox.pages())
        desk.kill(workers[-1])
        kills.append(len(mailbox.pages()) == before)  # True: the kill came before the page went out
        workers.append(f"worker-{len(workers)}")
        desk.start(workers[-1], "worker")

    try:
        desk.wait_ready()
        wait_for(lambda: _listening(desk.inbound_port), "the inbound SMTP listener")
        latency = run_flow(desk, mailbox, kill_and_replace)
    except AssertionError as exc:  # what the processes said is the evidence: keep it with the failure
        raise AssertionError(f"{exc}\n{desk.logs()}") from exc
    finally:
        desk.stop()
    print(f"{database}: ticket -> page mail across a SIGKILL (s): { {k: round(v, 2) for k, v in latency.items()} }")
    print(f"kills before the page went out: {kills}")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_running_demo_pages_whom_oncall_who_names(tmp_path: Path) -> None:
    """The demo as shipped, on the real clock and without SMTP (mail is logged): `zhiban oncall who --plan
    enterprise --json` names who is on call for the Enterprise plan's policy, and a P1 ticket the Enterprise demo
    customer files through the API pages that person within 60 s."""
    desk = Deployment(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", None)
    desk.start("serve", "serve", "--port", str(desk.port))
    try:
        desk.wait_ready()
        who = desk.on_call("enterprise")
        assert abs(datetime.fromisoformat(who["at"]) - datetime.now(UTC)) < timedelta(minutes=2)  # the real clock
        plan = who["plan"]
        assert (plan["plan"], plan["mode"]) == ("enterprise", "standby")
        assert plan["policy_name"] == "Customer tickets on duty"
        [on_call] = plan["people"]
        # The first level pages the "Network primary" schedule: its person now, until their shift ends.
        [primary] = [s for s in who["schedules"] if s["name"] == "Network primary"]
        assert primary["on_call"] == [on_call] and on_call["email"].endswith("@zhiban.demo")
        token = desk.token("dev@liveco.demo")
        with httpx.Client(base_url=desk.base, timeout=30) as http:
            ticket = _file(http, token, "P1", "直播间大面积卡顿 real clock")
        page = f"Ticket #{ticket['id']} P1"

        def logged() -> bool:
            return any(
                "no SMTP server configured" in line and page in line and on_call["email"] in line
                for line in desk.log_text().splitlines()
            )

        took = wait_for(logged, f"the page of ticket #{ticket['id']} to {on_call['email']}\n{desk.logs()}", 60)
        assert ticket["on_duty"] is not None and ticket["on_duty"]["paged_at"] is not None
    except AssertionError as exc:  # what the processes said is the evidence: keep it with the failure
        raise AssertionError(f"{exc}\n{desk.logs()}") from exc
    finally:
        desk.stop()
    print(f"real clock: ticket -> page logged within {took:.2f} s")
