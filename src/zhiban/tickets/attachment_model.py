"""Attachments in the domain: limits, clean file names, the type the bytes say, and how a file is served.

Pure: no I/O. A file's type is what its bytes say (signatures from `filetype`, plus markup and text checks of our
own, since markup is what a browser would run); a declared type is believed only where the bytes cannot tell
(plain text, CSV, JSON, logs) and agree. Whatever the type, a file is served as a download, and markup
(HTML, SVG, XML) or anything not known to be inert as application/octet-stream.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

import filetype

from zhiban.core.errors import InvalidInput, TooLarge

MiB = 1024 * 1024
SNIFF_BYTES = 8192  # the head of a file the type is read from
MAX_FILENAME_BYTES = 200  # UTF-8 bytes of a kept file name (a file system allows 255)
MAX_FILES_PER_MESSAGE = 10
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class Limits:
    """How much a ticket may carry: each file, all its files together, how many."""

    file_bytes: int = 10 * MiB
    ticket_bytes: int = 50 * MiB
    ticket_files: int = 100
    files_per_message: int = MAX_FILES_PER_MESSAGE


def check_sizes(sizes: list[int], limits: Limits, *, used_bytes: int, used_files: int) -> None:
    """Refuse (413) files over the per-file bound, or that would take the ticket past its total or count."""
    if not sizes:
        raise InvalidInput("no file: send it in the multipart field `file`")
    if len(sizes) > limits.files_per_message:
        raise TooLarge(f"at most {limits.files_per_message} files in one message", limit=limits.files_per_message)
    for size in sizes:
        if size > limits.file_bytes:
            raise TooLarge(f"a file of {size} bytes is larger than {limits.file_bytes}", limit=limits.file_bytes)
    if used_files + len(sizes) > limits.ticket_files:
        raise TooLarge(f"a ticket holds at most {limits.ticket_files} files", limit=limits.ticket_files)
    if used_bytes + sum(sizes) > limits.ticket_bytes:
        left = max(0, limits.ticket_bytes - used_bytes)
        raise TooLarge(
            f"the ticket's files would pass {limits.ticket_bytes} bytes ({left} left)", limit=limits.ticket_bytes
        )


# --- file names ----------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[<>:"/\\|?*;]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def clean_filename(name: str | None) -> str:
    """A name safe to show and to offer in a download: no path, no control or separator characters, bounded."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]  # a browser or a mail client may send a whole path
    name = "".join(" " if unicodedata.category(ch).startswith(("C", "Z")) else ch for ch in name)
    name = _UNSAFE.sub("_", name)
    name = " ".join(name.split()).strip(". ")
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    if len(name.encode()) > MAX_FILENAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and 0 < len(ext.encode()) <= 16 else ""
        room = MAX_FILENAME_BYTES - len(ext.encode()) - (1 if ext else 0)
        stem = (stem if ext else name).encode()[:room].decode(errors="ignore").rstrip(". ")
        name = f"{stem}.{ext}" if ext else stem
    return name or "attachment"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name in RFC 5987 form (RFC 6266)."""
    # Accents fall off (é -> e); any other character outside plain ASCII becomes one "_" per run.
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", filename) if not unicodedata.combining(ch))
    fallback = re.sub(r"[^A-Za-z0-9._ ()+,=@!#$&~^-]+", "_", plain).strip() or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# --- types -----------------------------------------------------------------------------------------

# Types stored as declared when the bytes are text: they carry no markup a browser would run.
TEXT_TYPES = frozenset(
    {"text/plain", "text/csv", "application/json", "application/x-ndjson", "text/x-log", "text/markdown"}
)
# Types served as themselves (still as a download); everything else goes out as application/octet-stream.
SERVED_AS_IS = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/x-xz",
        "application/x-bzip2",
        "audio/mpeg",
        "audio/x-wav",
        "audio/ogg",
        "video/mp4",
        "video/webm",
        "text/plain",
        "text/csv",
        "application/json",
    }
)
_MARKUP = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|script|iframe|object|embed|svg|img|a\s|meta|link|style|form|\?xml)",
    re.IGNORECASE,
)


def _text(head: bytes) -> bool:
    """Whether a file's head reads as UTF-8 text (a character cut at the end of the head is allowed)."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def _markup(head: bytes) -> str | None:
    """The markup type of a text head that a browser would render: HTML, SVG or XML (None: no markup)."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in start:
        return "image/svg+xml"
    if start.startswith(b"<?xml"):
        return "application/xml"
    if _MARKUP.search(head):
        return "text/html"
    return None


def _normalized(declared: str | None) -> str:
    return (declared or "").split(";")[0].strip().lower()[:127]


def sniff(head: bytes, declared: str | None) -> str:
    """The type a file is stored as: what its first bytes say; the declared type only where it agrees."""
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return str(kind.mime)
    if head and _text(head):
        markup = _markup(head)
        if markup is not None:
            return markup
        wanted = _normalized(declared)
        return wanted if wanted in TEXT_TYPES else "text/plain"
    return OCTET_STREAM


def served_type(stored: str) -> str:
    """The Content-Type a file goes out with: known inert types as themselves, the rest as octet-stream."""
    if stored in SERVED_AS_IS:
        return f"{stored}; charset=utf-8" if stored.startswith("text/") else stored
    return OCTET_STREAM
