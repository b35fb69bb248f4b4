"""A real Dovecot IMAP server for the mailbox tests: its own config, passwd-file user, maildir and self-signed
certificate in a temp dir; plain IMAP with STARTTLS on one free port, IMAP over TLS on another.

Debian's `dovecot-imapd` (Makefile SYSTEM_PACKAGES). Missing locally: the tests skip; under CI=true they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.mail.mail_kit import unused_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "support@desk.test"
PASSWORD = "imap-test-secret"


@dataclass
class Dovecot:
    root: Path
    port: int  # plain IMAP, STARTTLS offered
    process: subprocess.Popen[bytes]
    tls_port: int  # IMAP over TLS from the start (imaps)
    user: str = USER
    password: str = PASSWORD

    def client(self) -> IMAPClient:
        """A logged-in imapclient session, as a customer's provider's delivery (or a person) would use."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    @property
    def certificate(self) -> Path:
        """The server's self-signed certificate (for 127.0.0.1), to trust it."""
        return self.root / "cert.pem"

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def require_dovecot() -> None:
    """Skip locally when Dovecot is not installed; in CI a missing server is a failure."""
    if not os.path.exists(DOVECOT):
        if os.environ.get("CI") == "true":
            pytest.fail("dovecot is not installed (Debian package dovecot-imapd, Makefile SYSTEM_PACKAGES)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")


def _users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid): Dovecot's own users as root (it keeps mail as no root);
    else ours for everything."""
    if os.geteuid() == 0:
        try:
            internal = pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
            return "dovecot", "dovenull", internal.pw_uid, internal.pw_gid
        except KeyError:
            pass
    me = pwd.getpwuid(os.geteuid()).pw_name
    return me, me, os.geteuid(), os.getegid()


def _self_signed(root: Path) -> None:
    """A certificate for 127.0.0.1 made by openssl (a dependency of Dovecot's own package)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


def _config(root: Path, port: int, tls_port: int) -> str:
    internal, login, uid, gid = _users()
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered at once (the default waits 2 s); IDLE looks for new mail every second even where
# inotify does not reach (containers), instead of every 30 s.
auth_failure_delay = 0
mailbox_idle_check_interval = 1 secs
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
first_valid_gid = {gid}
default_internal_user = {internal}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


def _wait_ready(server: Dovecot, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"dovecot exited ({server.process.returncode}):\n{server.log()}")
        try:
            server.client().logout()
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"dovecot did not answer within {seconds} s:\n{server.log()}")


@contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """Start a private Dovecot on a free port; stop it and remove its files afterwards."""
    require_dovecot()
    # Not under pytest's 0700 tmp: Dovecot's unprivileged login process must reach its sockets.
    root = Path(tempfile.mkdtemp(prefix="zhiban-dovecot-"))
    root.chmod(0o755)
    port, tls_port = unused_port(), unused_port()
    while tls_port == port:
        tls_port = unused_port()
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    _self_signed(root)
    (root / "dovecot.conf").write_text(_config(root, port, tls_port))
    _, _, uid, gid = _users()
    for folder in ("mail", "home"):
        (root / folder).mkdir()
        os.chown(root / folder, uid, gid)
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    server = Dovecot(root, port, process, tls_port)
    try:
        _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)
