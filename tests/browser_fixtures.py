"""Browser fixtures, a pytest plugin loaded by tests/conftest.py so that every folder shares one Chromium.

A real `zhiban serve`, and Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    # Fake camera and microphone, granted without a prompt: the WebRTC loopback test needs them.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Chromium; missing locally means skip, missing in CI means fail."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is not installed (make test installs it)")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def desk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`zhiban serve` with the demo on a fresh SQLite database; yields its base URL."""
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = {
        **os.environ,
        "ZHIBAN_DATABASE_URL": f"sqlite:///{tmp / 'desk.db'}",
        "ZHIBAN_VAR_DIR": str(tmp / "var"),
        "ZHIBAN_LOG_LEVEL": "WARNING",
    }
    log = open(tmp / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "zhiban"), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # a bound, not a wait: at load 24 the demo desk took over 90 s to start
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((tmp / "serve.log").read_text()[-3000:]) from None
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("zhiban serve did not become ready")
    yield base
    stop_desk(proc)


def stop_desk(proc: subprocess.Popen[bytes]) -> None:
    """Stop a desk as an operator would (SIGTERM), then kill it if it does not go. A desk stopping gives its running
    jobs a grace period, and on SQLite waits for a long write (the demo's knowledge-base import) to commit: at
    high load that took over 30 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def wait_until(page: Any, expression: str, timeout: float = 30_000) -> None:
    """Poll a JavaScript expression until truthy (page.wait_for_function compiles it with `new Function`, which the
    desk's CSP refuses; page.evaluate runs through the DevTools protocol, outside the page's policy)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} ms: {expression}")
        time.sleep(0.1)
