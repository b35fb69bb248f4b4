"""A request's transaction commits before its answer leaves: what a client was told is what the desk holds.

Over a real uvicorn server and a real HTTP client: FastAPI ends a `yield` dependency after the response was sent
unless told otherwise, which answered 201 for a ticket still being committed (a drill then failed on PostgreSQL:
the ticket it had just been told about was not there yet), or one a failing commit then lost.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from tests.tenancy import bearer, build_world
from zhiban.desk import Desk
from zhiban.tickets.store import TicketRow
from zhiban.web.app import create_app

TICKET = {"subject": "No audio in class", "body": "Students hear nothing since 19:00."}


@contextmanager
def serving(desk: Desk) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(desk), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_201_arrives_after_the_commit_and_a_failed_commit_is_answered_as_an_error(desk: Desk) -> None:
    world = build_world(desk)
    committed: list[float] = []
    fail = {"on": False}

    def files_a_ticket(session: Session, *_: object) -> None:
        if any(isinstance(row, TicketRow) for row in session.new):
            session.info["files_a_ticket"] = True

    def slow_commit(session: Session) -> None:
        if session.info.get("files_a_ticket"):
            if fail["on"]:
                raise RuntimeError("the database went away at commit")
            time.sleep(0.5)  # a commit that takes a while (fsync, a busy server)

    def after(session: Session) -> None:
        if session.info.pop("files_a_ticket", False):
            committed.append(time.monotonic())

    def rolled_back(session: Session) -> None:
        session.info.pop("files_a_ticket", None)

    event.listen(desk.sessions, "before_flush", files_a_ticket)
    event.listen(desk.sessions, "before_commit", slow_commit)
    event.listen(desk.sessions, "after_commit", after)
    event.listen(desk.sessions, "after_rollback", rolled_back)
    try:
        with serving(desk) as url, httpx.Client(base_url=url, headers=bearer(world.alice_token)) as client:
            answer = client.post("/api/v1/tickets", json=TICKET, timeout=30)
            received = time.monotonic()
            assert answer.status_code == 201, answer.text
            assert len(committed) == 1 and committed[0] <= received  # the answer left after the commit
            with desk.sessions() as s:  # read-your-writes, from another connection
                assert s.get(TicketRow, answer.json()["id"]) is not None

            fail["on"] = True
            with desk.sessions() as s:
                before = s.scalar(select(func.count()).select_from(TicketRow))
            answer = client.post("/api/v1/tickets", json=TICKET, timeout=30)
            assert answer.status_code == 500, answer.text  # never a 201 for a ticket that was not stored
            assert answer.json()["type"].endswith("/internal-error")
            with desk.sessions() as s:
                assert s.scalar(select(func.count()).select_from(TicketRow)) == before
    finally:
        event.remove(desk.sessions, "before_flush", files_a_ticket)
        event.remove(desk.sessions, "before_commit", slow_commit)
        event.remove(desk.sessions, "after_commit", after)
        event.remove(desk.sessions, "after_rollback", rolled_back)
