"""Attachments over the API: upload files with a message (multipart, field `file`), download one (always as a file).

The upload route has its own body bound (web.limits, family "uploads"); the per-file and per-ticket limits are the
service's (413 problem JSON, nothing kept). A download is only ever a download: Content-Disposition attachment with
the name in RFC 6266/5987 form, nosniff, a CSP that lets nothing run (sandbox), and markup as octet-stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, BinaryIO

from fastapi import APIRouter, File, Form, Path, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from zhiban.core.errors import NotFound
from zhiban.tickets import attachments
from zhiban.tickets.attachment_model import content_disposition, served_type
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of, reads_only
from zhiban.web.fields import TicketId
from zhiban.web.scopes import needs

if TYPE_CHECKING:
    from zhiban.tickets.blobs import BlobStore
    from zhiban.tickets.store import AttachmentRow

# Included by tickets.api's router: under its prefix (/api/v1/tickets) and its scopes (tickets:read / tickets:write).
router = APIRouter()

AttachmentId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
# Nothing a downloaded file says can run or load anything, even if a browser were to render it.
DOWNLOAD_CSP = "default-src 'none'; sandbox"
CHUNK = 64 * 1024


class AttachmentOut(BaseModel):
    id: str
    filename: str
    size: int = Field(description="bytes")
    content_type: str = Field(description="the type its bytes say (a declared type that disagrees is not kept)")
    url: str = Field(description="where to download it (the same credentials as the ticket)")
    comment_id: int = Field(description="the message it came with")
    created_at: datetime

    @classmethod
    def of(cls, row: AttachmentRow) -> AttachmentOut:
        return cls(
            id=row.id,
            filename=row.filename,
            size=row.size,
            content_type=row.content_type,
            url=f"/api/v1/tickets/{row.ticket_id}/attachments/{row.id}",
            comment_id=row.comment_id,
            created_at=row.created_at,
        )


class UploadOut(AttachmentOut):
    """The first file sent (its `url` downloads it) and every file of the message in `attachments`."""

    attachments: list[AttachmentOut]


def uploads_of(files: list[UploadFile] | None) -> list[attachments.Upload]:
    found = []
    for f in files or []:
        size = f.size
        if size is None:  # starlette counts what it spooled; measure if it did not
            size = f.file.seek(0, 2)
            f.file.seek(0)
        found.append(attachments.Upload(f.filename, f.content_type, f.file, size))
    return found


@router.post(
    "/{ticket_id}/attachments",
    status_code=201,
    response_model=UploadOut,
    summary="Attach files: posts a message carrying them (multipart field `file`, repeatable)",
    dependencies=[needs("tickets:write")],
)
def upload(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    response: Response,
    # Optional in the signature: a caller who may not see the ticket is told so (404) before its body is judged.
    file: Annotated[list[UploadFile] | None, File(description="the file(s)")] = None,
    body: Annotated[str | None, Form(max_length=100_000, description="the message's text (default: the names)")] = None,
    public: Annotated[bool, Form(description="false: an internal note (agents)")] = True,
) -> UploadOut:
    principal.require_scope("tickets:write")
    settings = desk_of(request).settings
    _, rows = attachments.upload(
        session,
        clock,
        principal,
        ticket_id,
        uploads_of(file),
        store=attachments.store_of(settings),
        limits=attachments.limits_of(settings),
        body=body,
        public=public,
    )
    out = [AttachmentOut.of(r) for r in rows]
    response.headers["Location"] = out[0].url
    return UploadOut(**out[0].model_dump(), attachments=out)


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    with source:
        while chunk := source.read(CHUNK):
            yield chunk


def download_response(row: AttachmentRow, store: BlobStore) -> Response:
    """The file as a download that no browser renders or runs."""
    try:
        source = store.open(row.blob_key)
    except FileNotFoundError as exc:
        raise NotFound("the attachment's file is gone") from exc
    headers = {
        "Content-Disposition": content_disposition(row.filename),
        "Content-Length": str(row.size),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOWNLOAD_CSP,
        "Cache-Control": "private, no-store",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    return StreamingResponse(_chunks(source), media_type=served_type(row.content_type), headers=headers)


@router.get(
    "/{ticket_id}/attachments/{attachment_id}",
    summary="Download an attachment (always as a file)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    dependencies=[needs("tickets:read")],
)
@reads_only
def download(
    request: Request, session: DB, principal: CurrentPrincipal, ticket_id: TicketId, attachment_id: AttachmentId
) -> Response:
    principal.require_scope("tickets:read")
    row = attachments.find(session, principal, ticket_id, attachment_id)
    return download_response(row, attachments.store_of(desk_of(request).settings))
