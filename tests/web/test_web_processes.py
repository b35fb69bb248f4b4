"""`zhiban web --web-procs 2`: two real web processes on one port, and a limit that holds across them.

The login throttle (five failed sign-ins per e-mail and client in 15 minutes) is kept in the database. Each
attempt goes on a new connection, and the test finds which process accepted it (its socket's inode in
/proc/net/tcp, then the process holding that socket). A process answering 429 although it had seen fewer than
five of the failures, or had seen none, shows that the count is shared: the test waits until both processes have
answered 429.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.notify.notify_fakes import unused_port

ZHIBAN = str(Path(sys.executable).parent / "zhiban")
pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc to tell processes apart")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _server_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server side of the TCP connection from client_port to server_port."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return inode
    return None


def _holder(pids: list[int], inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir() if fds.exists() else ():
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue
    return None


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout  # a loaded machine takes a while to import two processes
    while time.monotonic() < deadline:
        assert process.poll() is None, "zhiban web exited"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("zhiban web did not answer")


def test_the_login_throttle_holds_across_two_web_processes_on_one_port(tmp_path: Path) -> None:
    port = unused_port()
    env = dict(
        os.environ,
        ZHIBAN_DATABASE_URL=f"sqlite:///{tmp_path / 'desk.db'}",
        ZHIBAN_VAR_DIR=str(tmp_path),
        ZHIBAN_SECRET_KEY="two-processes-secret-key-0123456789",
        ZHIBAN_DEMO="false",
        ZHIBAN_SIMULATE="false",
        ZHIBAN_LOG_LEVEL="WARNING",
    )
    subprocess.run([ZHIBAN, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 - closed below
    web = subprocess.Popen([ZHIBAN, "web", "--port", str(port), "--web-procs", "2"], env=env, stdout=log, stderr=log)
    try:
        _wait_ready(port, web)
        deadline = time.monotonic() + 120
        while len(pids := [web.pid, *_children(web.pid)]) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(pids) == 2, "one sibling web process beside the first"
        _wait_ready(port, web)

        page = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        page.request("GET", "/login")
        answer = page.getresponse()
        cookie = answer.getheader("set-cookie", "").split(";", 1)[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', answer.read().decode())
        assert cookie and token
        form = urllib.parse.urlencode(
            {"email": "nobody@customer.test", "password": "wrong-password", "csrf_token": token[1]}
        )

        def attempt() -> tuple[int, int | None]:
            """One failed sign-in on a new connection: (status, pid of the process that answered)."""
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
            conn.request("POST", "/login", body=form, headers=headers)
            response = conn.getresponse()
            response.read()
            client_port = conn.sock.getsockname()[1]
            inode = _server_inode(port, client_port)
            pid = _holder(pids, inode) if inode else None
            conn.close()
            return response.status, pid

        failures = [attempt() for _ in range(5)]
        assert [status for status, _ in failures] == [401] * 5
        refused_by: set[int] = set()
        # The sibling may still be starting (importing takes a while on a loaded machine): until it accepts, the
        # first process takes every connection. Bounded in time, not in attempts.
        until = time.monotonic() + 180
        while time.monotonic() < until:
            status, pid = attempt()
            assert status == 429, "a sixth failure in the window is refused, whichever process takes it"
            if pid is not None:
                refused_by.add(pid)
            if refused_by == set(pids):
                break
            time.sleep(0.1)
        # Five failures were counted between the two, so at least one process refused on failures it never saw.
        assert refused_by == set(pids), f"both processes answered 429 (saw {refused_by} of {pids})"
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            web.wait(60)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()
        log.close()
    sibling = Path(f"/proc/{pids[1]}")
    deadline = time.monotonic() + 30
    while sibling.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not sibling.exists(), "the sibling stops with the first process"
