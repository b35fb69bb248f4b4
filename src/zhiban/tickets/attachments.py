"""Use cases of attachments: files kept with a ticket's messages, within the caller's tenancy.

A file always comes with a message: an upload posts one (its text, or the files' names) and the files go with it;
mail's files go with the message the mail became. Limits are checked before any byte is kept (413, nothing
stored), under the ticket's row lock, so two uploads at once cannot both take the last room. Who may read a file is
who may read its message: the ticket's organization and the desk's staff, never a customer for an internal note's.

Tickets are never deleted today (no retention path): an attachment's row goes with its ticket or message (foreign
keys ON DELETE CASCADE), and the daily `tickets.attachment_sweep` deletes blobs no row names any more, and partial
writes, once they are older than SWEEP_GRACE (a blob is written before its row commits).
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import NotFound, TooLarge
from zhiban.core.settings import Settings, SettingsSource
from zhiban.engine import JobContext, enqueue_many, has_job
from zhiban.identity.model import Principal
from zhiban.tickets import service
from zhiban.tickets.attachment_model import SNIFF_BYTES, Limits, check_sizes, clean_filename, sniff
from zhiban.tickets.blobs import BlobStore, BlobTooLarge, file_store
from zhiban.tickets.store import AttachmentRow, CommentRow, TicketRow

log = logging.getLogger("zhiban.tickets")

SWEEP_JOB = "tickets.attachment_sweep"
SWEEP_GRACE = timedelta(hours=6)
SWEEP_AT = time(3, 0)  # UTC
SWEEP_BATCH = 500
_ARMED = "zhiban.tickets.attachment_sweep_armed"

# Where the sweep job finds the desk's var directory (tickets.hooks points it at the environment's settings).
current_settings: SettingsSource[Settings] = SettingsSource("zhiban.tickets.hooks")


def limits_of(settings: Settings) -> Limits:
    return Limits(
        file_bytes=settings.attachment_max_file_bytes,
        ticket_bytes=settings.attachment_max_ticket_bytes,
        ticket_files=settings.attachment_max_ticket_files,
    )


def store_of(settings: Settings) -> BlobStore:
    """The blob store of the desk these settings describe (files under its var directory)."""
    return file_store(settings.var_dir)


@dataclass(frozen=True)
class Upload:
    """One file as sent: the name and type its sender declared, its bytes, and their size."""

    filename: str | None
    content_type: str | None
    source: BinaryIO
    size: int

    @classmethod
    def of_bytes(cls, filename: str | None, content_type: str | None, data: bytes) -> Upload:
        return cls(filename, content_type, io.BytesIO(data), len(data))


def usage(session: Session, ticket_id: int) -> tuple[int, int]:
    """(bytes, files) a ticket's attachments take."""
    query = select(func.coalesce(func.sum(AttachmentRow.size), 0), func.count()).where(
        AttachmentRow.ticket_id == ticket_id
    )
    row = session.execute(query).one()
    return int(row[0]), int(row[1])


def _locked(session: Session, ticket_id: int) -> None:
    """Hold the ticket's row until commit: limits are checked and files added by one upload at a time."""
    session.get(TicketRow, ticket_id, with_for_update=True)


def upload(
    session: Session,
    clock: Clock,
    principal: Principal,
    ticket_id: int,
    files: Sequence[Upload],
    *,
    store: BlobStore,
    limits: Limits,
    body: str | None = None,
    public: bool = True,
) -> tuple[CommentRow, list[AttachmentRow]]:
    """Post a message with files on a ticket the caller may see (its text, or the files' names)."""
    ticket = service.find(session, principal, ticket_id)  # another tenant's ticket: NotFound, before anything
    _locked(session, ticket.id)
    used_bytes, used_files = usage(session, ticket.id)
    check_sizes([f.size for f in files], limits, used_bytes=used_bytes, used_files=used_files)
    names = [clean_filename(f.filename) for f in files]
    text = (body or "").strip() or "\n".join(f"📎 {name}" for name in names)
    comment = service.add_comment(session, clock, principal, ticket.id, body=text, public=public)
    rows = [
        _keep(session, clock, comment, principal.person_id, f, name, store, limits, position)
        for position, (f, name) in enumerate(zip(files, names, strict=True))
    ]
    return comment, rows


def attach_to_filed(
    session: Session,
    clock: Clock,
    principal: Principal,
    ticket_id: int,
    files: Sequence[Upload],
    *,
    store: BlobStore,
    limits: Limits,
) -> list[AttachmentRow]:
    """Files sent with a new ticket (the portal's form): kept with its first message. Called in the transaction
    that filed it, so a refusal (413) files nothing either."""
    ticket = service.find(session, principal, ticket_id)
    _locked(session, ticket.id)
    used_bytes, used_files = usage(session, ticket.id)
    check_sizes([f.size for f in files], limits, used_bytes=used_bytes, used_files=used_files)
    first = session.scalar(select(CommentRow).where(CommentRow.ticket_id == ticket.id).order_by(CommentRow.id).limit(1))
    if first is None:
        raise NotFound(f"ticket #{ticket.id} has no message")
    return [
        _keep(session, clock, first, principal.person_id, f, clean_filename(f.filename), store, limits, position)
        for position, f in enumerate(files)
    ]


def _keep(
    session: Session,
    clock: Clock,
    comment: CommentRow,
    author_id: str,
    file: Upload,
    name: str,
    store: BlobStore,
    limits: Limits,
    position: int,
) -> AttachmentRow:
    head = file.source.read(SNIFF_BYTES)
    file.source.seek(0)
    try:
        stored = store.put(file.source, max_bytes=limits.file_bytes)
    except BlobTooLarge as exc:  # a size that lied: the bytes are the bound
        raise TooLarge(f"a file is larger than {limits.file_bytes} bytes", limit=limits.file_bytes) from exc
    row = AttachmentRow(
        id=secrets.token_urlsafe(18),
        ticket_id=comment.ticket_id,
        comment_id=comment.id,
        author_id=author_id,
        position=position,
        filename=name,
        content_type=sniff(head, file.content_type),
        size=stored.size,
        blob_key=stored.key,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    arm_sweep(session, clock)
    return row


def keep_with_message(
    session: Session,
    clock: Clock,
    comment: CommentRow,
    files: Sequence[Upload],
    *,
    store: BlobStore,
    limits: Limits,
) -> tuple[list[AttachmentRow], list[str]]:
    """Keep a received mail's files with the message it became, as many as the limits allow (the mail itself is
    never refused for them). Returns the rows kept and the names left out, each with why."""
    _locked(session, comment.ticket_id)
    used_bytes, used_files = usage(session, comment.ticket_id)
    kept: list[AttachmentRow] = []
    left_out: list[str] = []
    for file in files:
        name = clean_filename(file.filename)
        if len(kept) >= limits.files_per_message:
            left_out.append(f"{name} (more than {limits.files_per_message} files)")
            continue
        try:
            check_sizes([file.size], limits, used_bytes=used_bytes, used_files=used_files)
        except TooLarge as exc:
            left_out.append(f"{name} ({exc.detail})")
            continue
        row = _keep(session, clock, comment, comment.author_id, file, name, store, limits, len(kept))
        kept.append(row)
        used_bytes, used_files = used_bytes + row.size, used_files + 1
    if left_out:
        log.warning("ticket #%s: mail attachments not kept: %s", comment.ticket_id, "; ".join(left_out))
    return kept, left_out


def of_comments(session: Session, comment_ids: Sequence[int]) -> dict[int, list[AttachmentRow]]:
    """The attachments of these messages (the caller already may read them), each message's in upload order."""
    found: dict[int, list[AttachmentRow]] = {}
    ids = sorted(set(comment_ids))
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        query = select(AttachmentRow).where(AttachmentRow.comment_id.in_(part))
        for row in session.scalars(query.order_by(AttachmentRow.comment_id, AttachmentRow.position)):
            found.setdefault(row.comment_id, []).append(row)
    return found


def find(session: Session, principal: Principal, ticket_id: int, attachment_id: str) -> AttachmentRow:
    """An attachment of that ticket the caller may read: its ticket's organization or staff, and a customer only a
    public message's. Anything else is reported as missing (no existence leaks across tenants or to customers)."""
    row = session.get(AttachmentRow, attachment_id) if len(attachment_id) <= 32 else None
    missing = NotFound("no such attachment")
    if row is None or row.ticket_id != ticket_id:
        raise missing
    try:
        service.find(session, principal, row.ticket_id)
    except NotFound:
        raise missing from None
    if not principal.is_staff:
        comment = session.get(CommentRow, row.comment_id)
        if comment is None or not comment.public:
            raise missing
    return row


# --- the sweep of blobs no attachment names --------------------------------------------------------


def sweep_orphans(session: Session, store: BlobStore, *, before: datetime) -> int:
    """Delete blobs stored before `before` that no attachment row names; how many were deleted."""
    deleted = 0
    batch: list[str] = []

    def flush() -> int:
        named = set(session.scalars(select(AttachmentRow.blob_key).where(AttachmentRow.blob_key.in_(batch))))
        gone = [key for key in batch if key not in named]
        for key in gone:
            store.delete(key)
        batch.clear()
        return len(gone)

    for key in store.keys_older_than(before):
        batch.append(key)
        if len(batch) >= SWEEP_BATCH:
            deleted += flush()
    if batch:
        deleted += flush()
    return deleted


def _tomorrow(now: datetime) -> tuple[datetime, str]:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, SWEEP_AT, tzinfo=UTC), f"{SWEEP_JOB}:{day.isoformat()}"


def arm_sweep(session: Session, clock: Clock) -> None:
    """Make sure tomorrow's sweep is queued (once per transaction; an insert-if-absent)."""
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_ARMED) is transaction:
        return
    due, key = _tomorrow(clock.now())
    if not has_job(session, key):
        enqueue_many(session, [(SWEEP_JOB, {}, due, key)])
    session.info[_ARMED] = transaction


def run_sweep(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `tickets.attachment_sweep` job: delete unnamed blobs; armed again while attachments exist."""
    store = store_of(current_settings())
    with ctx.session_factory() as session, session.begin():
        # A blob's age is its file's, stamped by the OS clock: measured against that clock, not the desk's.
        deleted = sweep_orphans(session, store, before=datetime.now(UTC) - SWEEP_GRACE)
        if deleted:
            log.info("attachment sweep deleted %s unnamed blobs", deleted)
        if session.scalar(select(AttachmentRow.id).limit(1)) is not None:
            arm_sweep(session, ctx.clock)
        ctx.finish(session)
