"""The pure side of attachments: clean names, the type the bytes say, the download's header, the limits."""

from __future__ import annotations

import gzip
import io
import unicodedata
import zipfile
from email.message import Message
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zhiban.core.errors import InvalidInput, TooLarge
from zhiban.tickets.attachment_model import (
    MAX_FILENAME_BYTES,
    OCTET_STREAM,
    Limits,
    check_sizes,
    clean_filename,
    content_disposition,
    served_type,
    sniff,
)

PNG_HEAD = bytes.fromhex("89504e470d0a1a0a0000000d49484452")


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:  # a fixed date: the same bytes (and test ids) in every process
        z.writestr(zipfile.ZipInfo("rtcstats.json", date_time=(2026, 11, 20, 19, 0, 0)), "{}")
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "declared", "stored", "served"),
    [
        (PNG_HEAD, "text/html", "image/png", "image/png"),
        (b"%PDF-1.7\n", "application/octet-stream", "application/pdf", "application/pdf"),
        (_zip(), "application/json", "application/zip", "application/zip"),
        (gzip.compress(b"log", mtime=0), None, "application/gzip", "application/gzip"),
        (b"<!DOCTYPE html><p>hi", "text/plain", "text/html", OCTET_STREAM),
        (b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'/>", "image/png", "image/svg+xml", OCTET_STREAM),
        (b"<?xml version='1.0'?><r/>", "text/plain", "application/xml", OCTET_STREAM),
        (b"ok line\n<script>alert(1)</script>", "text/plain", "text/html", OCTET_STREAM),
        (b'{"PeerConnections": {}}', "application/json", "application/json", "application/json"),
        (b"a,b\n1,2\n", "text/csv; charset=utf-8", "text/csv", "text/csv; charset=utf-8"),
        (b"plain words", "application/javascript", "text/plain", "text/plain; charset=utf-8"),
        ("日志 断线".encode(), None, "text/plain", "text/plain; charset=utf-8"),
        (b"\x00\x01\x02binary", "text/plain", OCTET_STREAM, OCTET_STREAM),
        (b"", "image/png", OCTET_STREAM, OCTET_STREAM),
    ],
)
def test_the_bytes_decide_the_type(head: bytes, declared: str | None, stored: str, served: str) -> None:
    assert sniff(head, declared) == stored
    assert served_type(stored) == served


def test_a_character_cut_by_the_sniffed_head_is_still_text() -> None:
    head = ("日" * 10).encode()[:-1]  # the head ends inside a character
    assert sniff(head, None) == "text/plain"


@given(st.text(max_size=600))
def test_clean_names_have_no_path_no_controls_and_a_bound(name: str) -> None:
    cleaned = clean_filename(name)
    assert cleaned and "/" not in cleaned and "\\" not in cleaned
    assert not any(unicodedata.category(ch).startswith("C") for ch in cleaned)
    assert len(cleaned.encode()) <= MAX_FILENAME_BYTES
    assert cleaned not in (".", "..") and not cleaned.startswith(" ")


def test_a_long_name_keeps_its_extension() -> None:
    cleaned = clean_filename("日志" * 200 + ".log")
    assert cleaned.endswith(".log") and len(cleaned.encode()) <= MAX_FILENAME_BYTES


@given(st.text(min_size=1, max_size=300))
def test_the_disposition_is_ascii_and_gives_the_exact_name_back(name: str) -> None:
    cleaned = clean_filename(name)
    header = content_disposition(cleaned)
    header.encode("latin-1")  # a header value a server can send
    assert header.isascii() and "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="')
    msg = Message()
    msg["Content-Disposition"] = header
    assert msg.get_content_disposition() == "attachment"
    assert unquote(header.partition("filename*=UTF-8''")[2]) == cleaned


def test_limits() -> None:
    limits = Limits(file_bytes=10, ticket_bytes=25, ticket_files=3, files_per_message=2)
    check_sizes([10, 10], limits, used_bytes=0, used_files=0)
    with pytest.raises(InvalidInput):
        check_sizes([], limits, used_bytes=0, used_files=0)
    for sizes, used_bytes, used_files in (([11], 0, 0), ([1, 1, 1], 0, 0), ([1], 0, 3), ([6], 20, 0)):
        with pytest.raises(TooLarge):
            check_sizes(sizes, limits, used_bytes=used_bytes, used_files=used_files)
