"""Read a support mailbox over IMAP (imapclient): each new mail is taken exactly as the SMTP listener takes it.

One poll: log in, select the folder, compare its UIDVALIDITY with the cursor (a change reads the folder again
from the start), take every mail above the cursor in UID order, then wait in IDLE for more where the server
has it (and the mailbox wants it), else end; the job queues the next poll. Each mail is filed by
`inbound.take_mail`, which moves the cursor in the transaction that files it, so a poll killed at any point
resumes at the first mail not filed. What becomes of a mail on the server:

- filed (new ticket, reply, held for an agent, or ignored as an auto-reply or a copy already filed): flagged
  \\Seen in that same transaction (before it commits), or moved to `move_to` after it commits (a mail filed
  but not moved, by a crash in between, is moved by the next poll);
- refused for good (over the mailbox's size bound, not from a customer, unreadable): flagged \\Flagged and left
  where it is for a person to see, counted as refused with its reason as the mailbox's last error;
- the desk's own trouble (the database, a full held-mail queue): nothing moves; the next poll tries again, and
  after MAX_RETRIES polls a mail that always fails is set aside as refused, so it cannot stop the mailbox.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock
from zhiban.core.settings import Settings
from zhiban.mail import mailboxes
from zhiban.mail.inbound import take_mail
from zhiban.mail.mailboxes import MailboxAccess
from zhiban.mail.model import uids_to_read
from zhiban.store.db import transaction

log = logging.getLogger("zhiban.mail")

IDLE_WINDOW = 240.0  # seconds a poll waits in IDLE before it ends and the next begins (servers end IDLE at 30 min)
IDLE_SLICE = 5.0  # a wait in IDLE looks this often whether its run still holds its job
# A new mail told of just before IDLE began may be read by imaplib before idle_check looks (in its buffer): the wait
# looks for mail again this often, so such a mail waits at most that long.
IDLE_RECHECK = 30.0
BATCH = 50  # mails whose sizes are asked at once
MAX_RUN_MAILS = 500  # mails one poll takes; past it the poll ends and the next begins at once
TIMEOUT = 30.0  # seconds of the IMAP connection's socket operations
# A wait in IDLE holds one of the worker's job threads. Pages and SLA timers must never queue behind mailboxes:
# one mailbox per process waits in IDLE, any other is polled every poll_seconds meanwhile.
MAX_IDLE_WAITS = 1
_idle_waits = threading.BoundedSemaphore(MAX_IDLE_WAITS)
SEEN = b"\\Seen"
FLAGGED = b"\\Flagged"
DELETED = b"\\Deleted"
_SIZE = b"RFC822.SIZE"
_BODY = b"BODY[]"


@dataclass(frozen=True)
class PollResult:
    """What one poll did, and when the next should run (None: the mailbox was removed)."""

    again_in: timedelta | None
    filed: int = 0
    refused: int = 0
    error: str | None = None


def connect(box: MailboxAccess, ssl_context: ssl.SSLContext | None = None) -> IMAPClient:
    """Open and log in to the mailbox's server: TLS from the start, STARTTLS, or (tests, localhost) plain."""
    context = ssl_context or ssl.create_default_context()
    client = IMAPClient(box.host, port=box.port, ssl=box.security == "tls", ssl_context=context, timeout=TIMEOUT)
    try:
        if box.security == "starttls":
            client.starttls(context)
        client.login(box.username, box.password)
    except BaseException:
        # A failed STARTTLS handshake leaves the socket closed already: the first error is the one to tell.
        with contextlib.suppress(OSError):
            client.shutdown()
        raise
    return client


def poll(
    session_factory: sessionmaker[Session],
    clock: Clock,
    mailbox_id: str,
    *,
    settings: Settings,
    keep_going: Callable[[], bool] = lambda: True,
    ssl_context: ssl.SSLContext | None = None,
    idle_window: float = IDLE_WINDOW,
    max_mails: int = MAX_RUN_MAILS,
) -> PollResult:
    """Take what arrived in one mailbox; `keep_going` is False once this run lost its job (stop at once)."""
    with transaction(session_factory) as session:
        box = mailboxes.access(session, mailbox_id)
    if box is None:
        return PollResult(None)
    # The mailbox's provider stamps Authentication-Results with its own id: believed as the desk's MTA's are.
    trusted = ",".join(part for part in (settings.mail_authserv_id, box.authserv_id) if part)
    run = _Run(session_factory, clock, box, settings.model_copy(update={"mail_authserv_id": trusted}), keep_going)
    try:
        client = connect(box, ssl_context)
    except (IMAPClientError, OSError, ssl.SSLError) as exc:
        return run.failed(f"cannot log in to {box.host}:{box.port}: {_reason(exc)}")
    try:
        return run.read(client, idle_window, max_mails)
    except (IMAPClientError, OSError, ssl.SSLError) as exc:
        return run.failed(f"IMAP: {_reason(exc)}")
    finally:
        try:
            client.logout()
        except Exception:  # the connection may be gone already; the server drops it anyway
            client.shutdown()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if isinstance(exc, OSError | ssl.SSLError) else text


class _Run:
    """One poll of one mailbox."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Clock,
        box: MailboxAccess,
        settings: Settings,
        keep_going: Callable[[], bool],
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.box = box
        self.settings = settings
        self.keep_going = keep_going
        self.filed = 0
        self.refused = 0
        self.uidvalidity = 0

    def _transaction(self) -> Any:
        return transaction(self.session_factory)

    def failed(self, error: str) -> PollResult:
        log.warning("mailbox %s: %s", self.box.name, error)
        with self._transaction() as session:
            mailboxes.failed(session, self.clock, self.box.id, error)
        return PollResult(timedelta(seconds=self.box.poll_seconds), self.filed, self.refused, error)

    def _done(self, again_in: timedelta) -> PollResult:
        return PollResult(again_in, self.filed, self.refused)

    def read(self, client: IMAPClient, idle_window: float, max_mails: int) -> PollResult:
        selected = client.select_folder(self.box.folder)
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        uidnext = int(selected.get(b"UIDNEXT", 1))
        with self._transaction() as session:
            last = mailboxes.start_cursor(session, self.clock, self.box.id, self.uidvalidity, uidnext)
        if self.box.after_filing == "move":
            self._prepare_move(client, last)
        idle = self.box.idle and client.has_capability("IDLE")
        deadline = time.monotonic() + idle_window
        taken = 0
        while self.keep_going():
            found = client.search(["UID", f"{last + 1}:*"])
            uids = uids_to_read([int(u) for u in found], last, min(BATCH, max_mails - taken))
            if not uids:
                with self._transaction() as session:
                    mailboxes.succeeded(session, self.clock, self.box.id)
                if not idle or time.monotonic() >= deadline:
                    # After a wait in IDLE the next poll begins at once (to wait again); else after the interval.
                    return self._done(timedelta(0) if idle else timedelta(seconds=self.box.poll_seconds))
                if not _idle_waits.acquire(blocking=False):
                    return self._done(timedelta(seconds=self.box.poll_seconds))  # another mailbox waits here
                try:
                    news = self._wait_for_news(client, deadline)
                finally:
                    _idle_waits.release()
                if not news:
                    return self._done(timedelta(0))
                continue  # new mail: look for it
            sizes = client.fetch(uids, [_SIZE])
            for uid in uids:
                if not self.keep_going():
                    return self._done(timedelta(0))
                size = sizes.get(uid, {}).get(_SIZE)
                if not self._take(client, uid, size):
                    return self._done(timedelta(seconds=self.box.poll_seconds))
                last = uid
            taken += len(uids)
            if taken >= max_mails:
                return self._done(timedelta(0))  # a backlog: the next poll goes on at once
        return self._done(timedelta(0))  # this run lost its job: whoever holds it now goes on

    def _wait_for_news(self, client: IMAPClient, deadline: float) -> bool:
        """IDLE until the server tells of new mail or it is time to look again (True), or the window ends or the
        job's lease is lost (False)."""
        client.idle()
        try:
            # An EXISTS sent between our SEARCH and IDLE's continuation is kept among imaplib's untagged responses.
            stashed = client._imap.untagged_responses
            if stashed.pop("EXISTS", None) is not None or stashed.pop("RECENT", None) is not None:
                return True
            recheck = min(deadline, time.monotonic() + IDLE_RECHECK)
            while time.monotonic() < recheck:
                responses = client.idle_check(timeout=min(IDLE_SLICE, max(recheck - time.monotonic(), 0.1)))
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    return True
                if not self.keep_going():
                    return False
            return time.monotonic() < deadline
        finally:
            client.idle_done()

    # --- one mail -----------------------------------------------------------------------------

    def _take(self, client: IMAPClient, uid: int, size: int | None) -> bool:
        """File, refuse or skip one mail; False when the desk cannot take mail now (try again at the next poll)."""
        box = self.box
        if size is None:  # expunged by someone else between SEARCH and FETCH: nothing to take
            with self._transaction() as session:
                mailboxes.taken(session, box.id, self.uidvalidity, uid, filed=False)
            return True
        if size > box.max_message_bytes:
            # Never downloaded: flagged for a person, recorded as refused.
            return self._refuse(client, uid, f"message of {size} bytes is larger than {box.max_message_bytes}")
        fetched = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
        raw = fetched.get(_BODY)
        if not isinstance(raw, bytes):
            with self._transaction() as session:
                mailboxes.taken(session, box.id, self.uidvalidity, uid, filed=False)
            return True

        def accepted(session: Session) -> None:
            if mailboxes.taken(session, box.id, self.uidvalidity, uid, filed=True) and box.after_filing == "seen":
                # Before the filing commits: a crash after this leaves the mail seen but the cursor before it,
                # so the next poll files it (once: it goes by UID, not by \Seen).
                client.add_flags([uid], [SEEN], silent=True)

        reply = take_mail(
            self._transaction,
            self.clock,
            self.settings,
            raw,
            None,  # IMAP has no envelope; bounces are still known by their headers
            [box.address],
            mailbox_id=box.id,
            accepted=accepted,
        )
        if reply.startswith("2"):
            self.filed += 1
            log.info("mailbox %s: UID %s: %s", box.name, uid, reply)
            if box.after_filing == "move" and box.move_to is not None:
                _move(client, [uid], box.move_to)
            return True
        if reply.startswith("5"):
            return self._refuse(client, uid, reply)
        log.warning("mailbox %s: UID %s not taken, will retry: %s", box.name, uid, reply)
        with self._transaction() as session:
            tries = mailboxes.deferred(session, self.clock, box.id, uid, reply)
        if tries >= mailboxes.MAX_RETRIES:
            # Not one poll's bad luck: this mail always fails. Set aside (flagged, left in place) so mail behind it
            # is read; a person can file it by hand (`zhiban mail ingest`).
            return self._refuse(client, uid, f"not taken after {tries} tries: {reply}")
        return False

    def _refuse(self, client: IMAPClient, uid: int, reason: str) -> bool:
        client.add_flags([uid], [FLAGGED], silent=True)
        log.warning("mailbox %s: UID %s refused: %s", self.box.name, uid, reason)
        with self._transaction() as session:
            mailboxes.refused(session, self.clock, self.box.id, self.uidvalidity, uid, reason)
        self.refused += 1
        return True

    def _prepare_move(self, client: IMAPClient, last: int) -> None:
        """Make the folder filed mail goes to; move what was filed but not moved (a crash between the two)."""
        assert self.box.move_to is not None
        if not client.folder_exists(self.box.move_to):
            client.create_folder(self.box.move_to)
        if last > 0:
            # Refused mail is flagged and stays; everything else at or below the cursor was filed.
            left = client.search(["UID", f"1:{last}", "UNFLAGGED"])
            if left:
                _move(client, [int(u) for u in left], self.box.move_to)


def _move(client: IMAPClient, uids: list[int], folder: str) -> None:
    """MOVE where the server has it (RFC 6851), else COPY, flag \\Deleted and expunge just those (UIDPLUS)."""
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
