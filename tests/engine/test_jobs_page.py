"""The jobs page shows dead-lettered jobs with their error, and an admin can put one back."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.tenancy import build_world, web_login
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.engine import JobContext, JobRegistry, Worker, enqueue, get_job


def _fail(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise RuntimeError("feishu robot answered 19021 sign not match")


def test_dead_job_listed_and_retried(client: TestClient, desk: Desk, clock: FrozenClock) -> None:
    build_world(desk, passwords=True)
    registry = JobRegistry()
    registry.add("demo.page", _fail)
    with desk.transaction() as s:
        job_id = enqueue(s, "demo.page", {"incident": 7}, due_at=clock.now(), max_attempts=1)
    Worker(desk.sessions, registry, clock).run_once()
    with desk.transaction() as s:
        assert get_job(s, job_id).state == "dead"

    web_login(client, "admin@vendor.test")
    page = client.get("/agent/jobs")
    assert page.status_code == 200
    assert "demo.page" in page.text and "19021 sign not match" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    r = client.post(f"/agent/jobs/{job_id}/retry", data={"csrf_token": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303
    with desk.transaction() as s:
        job = get_job(s, job_id)
    assert job.state == "pending" and job.attempts == 0


def test_customers_cannot_see_jobs(client: TestClient, desk: Desk) -> None:
    build_world(desk, passwords=True)
    web_login(client, "alice@liveco.test")
    assert client.get("/agent/jobs", headers={"accept": "text/html"}).status_code == 403
