"""Use cases of the support mailboxes read over IMAP: their configuration (admins), cursor and last outcomes.

Each mailbox has one pending poll job at a time (`mail.imap_poll`, keyed by the mailbox's `poll_seq`): the
job reads what arrived, then queues the mailbox's next poll in the transaction that finishes it. The cursor
(UIDVALIDITY and the last UID taken) moves in the transaction that files a mail, so a crash at any moment
neither skips a mail nor files it twice (a mail read again is also recognised by its Message-ID).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.engine import cancel, enqueue
from zhiban.identity.model import Principal
from zhiban.mail import store
from zhiban.mail.model import MAX_MAILBOXES, MailboxSettings, check_mailbox
from zhiban.mail.store import MailboxRow

log = logging.getLogger("zhiban.mail")

POLL_JOB = "mail.imap_poll"
# A poll job that keeps failing before it can record why (the database itself) is retried this often (the engine's
# most: ~16 h at its 10 min retry cap) before it is buried and the mailbox waits for `zhiban mail mailbox poll`.
POLL_ATTEMPTS = 100
MAX_ERROR = 500
MAX_RETRIES = 5  # polls that try one mail the desk could not take (4xx) before it is set aside as refused


@dataclass(frozen=True)
class MailboxAccess:
    """What one poll needs of a mailbox, read at its start (the row is not held while the server talks)."""

    id: str
    name: str
    address: str
    host: str
    port: int
    security: str
    username: str
    password: str
    folder: str
    after_filing: str
    move_to: str | None
    authserv_id: str
    poll_seconds: int
    max_message_bytes: int
    idle: bool
    uidvalidity: int | None
    last_uid: int

    def __repr__(self) -> str:  # keeps the password out of logs and tracebacks
        return f"MailboxAccess({self.name!r}, {self.username}@{self.host}:{self.port}/{self.folder})"


def poll_key(mailbox_id: str, seq: int) -> str:
    return f"{POLL_JOB}:{mailbox_id}:{seq}"


# --- admins -----------------------------------------------------------------------------------


def add_mailbox(session: Session, clock: Clock, principal: Principal, box: MailboxSettings) -> MailboxRow:
    """Configure a mailbox (admins) and queue its first poll now."""
    principal.require_admin()
    check_mailbox(box)
    if store.mailbox_named(session, box.name) is not None:
        raise Conflict(f"a mailbox named {box.name!r} exists")
    if len(store.mailboxes(session)) >= MAX_MAILBOXES:
        raise InvalidInput(f"at most {MAX_MAILBOXES} mailboxes")
    row = MailboxRow(
        name=box.name,
        address=box.address.lower(),
        host=box.host,
        port=box.port,
        security=box.security,
        username=box.username,
        password=box.password,
        folder=box.folder,
        after_filing=box.after_filing,
        move_to=box.move_to,
        authserv_id=box.authserv_id.strip(),
        poll_seconds=box.poll_seconds,
        max_message_bytes=box.max_message_bytes,
        idle=box.idle,
        uidvalidity=None,
        last_uid=store.SKIP_EXISTING if box.skip_existing else 0,
        poll_seq=0,
        retries=0,
        filed=0,
        refused=0,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    _queue_poll(session, row, clock.now())
    log.info("mailbox %s (%s@%s) added by %s", row.name, row.username, row.host, principal.person_id)
    return row


def list_mailboxes(session: Session, principal: Principal) -> list[MailboxRow]:
    """Every mailbox, by name (admins)."""
    principal.require_admin()
    return store.mailboxes(session)


def get_mailbox(session: Session, principal: Principal, ref: str) -> MailboxRow:
    """One mailbox by id or name (admins)."""
    principal.require_admin()
    row = session.get(MailboxRow, ref) or store.mailbox_named(session, ref)
    if row is None:
        raise NotFound(f"no mailbox {ref[:64]!r}")
    return row


def remove_mailbox(session: Session, principal: Principal, ref: str) -> MailboxRow:
    """Stop reading a mailbox (admins); its tickets stay, their replies come from the desk's address again."""
    row = get_mailbox(session, principal, ref)
    cancel(session, poll_key(row.id, row.poll_seq))  # a poll already running finds the mailbox gone and stops
    session.delete(row)
    session.flush()
    log.info("mailbox %s removed by %s", row.name, principal.person_id)
    return row


def poll_now(session: Session, clock: Clock, principal: Principal, ref: str) -> MailboxRow:
    """Move the mailbox's next poll to now (admins), e.g. after fixing its password."""
    row = get_mailbox(session, principal, ref)
    # A poll running now finds its seq superseded at its end and queues nothing: one chain of polls stays.
    cancel(session, poll_key(row.id, row.poll_seq))
    _queue_poll(session, row, clock.now())
    return row


# --- the poller -------------------------------------------------------------------------------


def _queue_poll(session: Session, row: MailboxRow, due_at: datetime) -> None:
    row.poll_seq += 1
    enqueue(
        session,
        POLL_JOB,
        {"mailbox": row.id, "seq": row.poll_seq},
        due_at=due_at,
        dedup_key=poll_key(row.id, row.poll_seq),
        max_attempts=POLL_ATTEMPTS,
    )


def access(session: Session, mailbox_id: str) -> MailboxAccess | None:
    """The mailbox as a poll needs it, or None when it was removed."""
    row = session.get(MailboxRow, mailbox_id, populate_existing=True)
    if row is None:
        return None
    return MailboxAccess(
        id=row.id,
        name=row.name,
        address=row.address,
        host=row.host,
        port=row.port,
        security=row.security,
        username=row.username,
        password=row.password,
        folder=row.folder,
        after_filing=row.after_filing,
        move_to=row.move_to,
        authserv_id=row.authserv_id,
        poll_seconds=row.poll_seconds,
        max_message_bytes=row.max_message_bytes,
        idle=row.idle,
        uidvalidity=row.uidvalidity,
        last_uid=row.last_uid,
    )


def _locked(session: Session, mailbox_id: str) -> MailboxRow | None:
    return session.get(MailboxRow, mailbox_id, with_for_update=True, populate_existing=True)


def start_cursor(session: Session, clock: Clock, mailbox_id: str, uidvalidity: int, uidnext: int) -> int:
    """The UID to read after: the cursor's, or 0 when the folder is new to us or its UIDVALIDITY changed (the
    folder's last UID, UIDNEXT - 1, on the first poll of a mailbox told to skip the mail already there)."""
    row = _locked(session, mailbox_id)
    if row is None:
        raise NotFound(f"mailbox {mailbox_id} was removed")
    if row.uidvalidity == uidvalidity:
        return row.last_uid
    if row.uidvalidity is None and row.last_uid == store.SKIP_EXISTING:
        row.uidvalidity, row.last_uid = uidvalidity, max(uidnext - 1, 0)
        log.info("mailbox %s: first poll, the %s mail(s) already there left alone", row.name, row.last_uid)
        return row.last_uid
    if row.uidvalidity is not None:
        # The server renumbered the folder: read it all again; mail already filed is known by its Message-ID.
        log.warning(
            "mailbox %s: UIDVALIDITY %s -> %s, reading the folder again from the start",
            row.name,
            row.uidvalidity,
            uidvalidity,
        )
        _error(row, clock, f"UIDVALIDITY changed ({row.uidvalidity} -> {uidvalidity}): folder read again")
    row.uidvalidity, row.last_uid = uidvalidity, 0
    return 0


def taken(session: Session, mailbox_id: str, uidvalidity: int, uid: int, *, filed: bool) -> bool:
    """Move the cursor past `uid` (in the transaction that filed or refused it); False if it was already past."""
    row = _locked(session, mailbox_id)
    if row is None or row.uidvalidity != uidvalidity or row.last_uid >= uid:
        return False  # removed, renumbered meanwhile, or another run took it: this run's work is not counted
    row.last_uid = uid
    if filed:
        row.filed += 1
    return True


def refused(session: Session, clock: Clock, mailbox_id: str, uidvalidity: int, uid: int, reason: str) -> None:
    """A mail the desk will never file (too large, not from a customer, unreadable): counted, and the cursor moves."""
    if taken(session, mailbox_id, uidvalidity, uid, filed=False):
        row = _locked(session, mailbox_id)
        assert row is not None
        row.refused += 1
        _error(row, clock, f"UID {uid} refused: {reason}")


def deferred(session: Session, clock: Clock, mailbox_id: str, uid: int, error: str) -> int:
    """Record that the desk could not take mail `uid` now; how many polls have tried it so far."""
    row = _locked(session, mailbox_id)
    if row is None:
        return 0
    row.retries = row.retries + 1 if row.retry_uid == uid else 1
    row.retry_uid = uid
    _error(row, clock, f"UID {uid} not taken ({row.retries} of {MAX_RETRIES} tries): {error}")
    return row.retries


def failed(session: Session, clock: Clock, mailbox_id: str, error: str) -> None:
    """Record why a poll could not go on (the server, the login, the desk's own trouble)."""
    row = _locked(session, mailbox_id)
    if row is not None:
        _error(row, clock, error)


def succeeded(session: Session, clock: Clock, mailbox_id: str) -> None:
    """Record that a poll read the folder to its end."""
    row = _locked(session, mailbox_id)
    if row is not None:
        row.last_success_at = clock.now()


def next_poll(session: Session, clock: Clock, mailbox_id: str, seq: int, after: timedelta) -> bool:
    """Queue the mailbox's next poll (in the transaction that finishes poll `seq`); False when the mailbox was
    removed or a newer poll was queued meanwhile (`poll_now`), which carries the chain on instead."""
    row = _locked(session, mailbox_id)
    if row is None or row.poll_seq != seq:
        return False
    _queue_poll(session, row, clock.now() + after)
    return True


def _error(row: MailboxRow, clock: Clock, error: str) -> None:
    row.last_error = " ".join(error.split())[:MAX_ERROR]
    row.last_error_at = clock.now()
