"""Fixtures for notify tests: a rendered page, and a short-timeout HTTP client allowed to reach loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.notify.notify_fakes import page_notice
from zhiban.notify.egress import EgressPolicy, guarded_client
from zhiban.notify.model import Message
from zhiban.notify.render import render_incident


@pytest.fixture
def page_zh() -> Message:
    return render_incident(page_notice(), "zh", "page:inc-42:step-1:alice")


@pytest.fixture
def page_en() -> Message:
    return render_incident(page_notice(), "en", "page:inc-42:step-1:bob")


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    # The fake receivers listen on loopback, which the egress guard refuses unless an admin allows it.
    client = guarded_client(policy=EgressPolicy.parse("127.0.0.1"), timeout=httpx.Timeout(2.0, connect=1.0))
    yield client
    client.close()
