"""Several web processes on one port (`--web-procs N`, ZHIBAN_WEB_PROCESSES): one more core per process.

The first process binds the listening socket and starts N-1 more `zhiban web` processes that inherit it; the kernel
hands each new connection to one of them. Only the first one runs the job worker (`zhiban serve`) and seeds the demo;
each one serves every route. What must hold across them lives in the database (login throttle, urgent pages, API
token stamps, jobs); what each keeps in memory is either immutable (SLA policy and calendar versions, triage models),
short-lived by design (the ingest-key cache, the queue heading's open count), or a per-process share of a desk-wide
rate (the Events API throttle, the telemetry ingest rate), each noted where it is kept.

A sibling that dies is started again; siblings stop when the first process stops (or dies).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn

log = logging.getLogger("zhiban.web")

LISTEN_FD_ENV = "ZHIBAN_WEB_LISTEN_FD"  # a sibling's inherited listening socket (set by the first process)
PARENT_ENV = "ZHIBAN_WEB_PARENT_PID"
MAX_PROCESSES = 64


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket that child processes may inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(backlog)
    listener.set_inheritable(True)
    return listener


def inherited_listener(environ: Mapping[str, str]) -> socket.socket | None:
    """The listening socket a first process handed down to this one (None: this process binds its own)."""
    fd = environ.get(LISTEN_FD_ENV, "")
    if not fd.isdigit():
        return None
    # The socket as what it is (TCP): uvicorn's own fd= takes it for a Unix socket, so its connections would lose
    # TCP_NODELAY and each answer would wait ~40 ms on Nagle and delayed ACKs.
    return socket.socket(fileno=int(fd))


class AnnouncedServer(uvicorn.Server):
    """uvicorn's server that says it is up (`announce`) once it answers, not while the app is still loading."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._announce is not None:
            self._announce()


def serve(app: Any, listener: socket.socket, announce: Callable[[], None] | None = None) -> None:
    """Serve the app on an already listening socket until SIGINT or SIGTERM."""
    config = uvicorn.Config(app, log_config=None, access_log=False)
    AnnouncedServer(config, announce).run(sockets=[listener])


def follow_parent(environ: Mapping[str, str]) -> None:
    """In a sibling: stop (SIGTERM to itself) when the first process is gone, so none is left serving alone."""
    parent = int(environ.get(PARENT_ENV, "0") or 0)
    if parent <= 0:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="zhiban-web-parent", daemon=True).start()


class Siblings:
    """The N-1 `zhiban web` processes beside the first one, on its listening socket; restarted if one dies."""

    def __init__(self, listener: socket.socket, count: int, env: Mapping[str, str]) -> None:
        self.listener = listener
        self.count = max(0, min(count, MAX_PROCESSES - 1))
        self.env = dict(env)  # the command's environment: the siblings read the same settings
        self.env.update({LISTEN_FD_ENV: str(listener.fileno()), PARENT_ENV: str(os.getpid())})
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _start_one(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "zhiban", "web"]
        return subprocess.Popen(command, env=self.env, pass_fds=(self.listener.fileno(),), stdin=subprocess.DEVNULL)

    def start(self) -> None:
        self.processes = [self._start_one() for _ in range(self.count)]
        if self.count:
            self._watcher = threading.Thread(target=self._watch, name="zhiban-web-siblings", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for i, process in enumerate(self.processes):
                if process.poll() is not None and not self._stopping.is_set():
                    log.warning("web process %s exited (%s); starting another", process.pid, process.returncode)
                    self.processes[i] = self._start_one()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every sibling and wait for them (killed after `timeout` seconds)."""
        self._stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
