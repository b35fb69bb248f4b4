"""Where attachment bytes live: a small storage interface and its file-system implementation.

Blobs are named by the SHA-256 of their bytes, so a file sent twice is kept once and a name can never point at
other bytes. A blob is written to a temporary file in the store's own folder and renamed into place: a reader never
sees half a file, and a crash leaves only a temporary file, which the sweep removes. The database says which blobs
are in use; `sweep` (attachments.sweep_orphans) deletes those no attachment names any more. An object store can take
this one's place by offering the same four calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 64 * 1024
_KEY = re.compile(r"^[0-9a-f]{64}$")
_TEMP_PREFIX = ".part-"


@dataclass(frozen=True)
class Stored:
    """A blob as kept: its key (the bytes' SHA-256, hex) and its size."""

    key: str
    size: int


class BlobStore(Protocol):
    """What attachments need of a place to keep bytes."""

    def put(self, source: BinaryIO, *, max_bytes: int) -> Stored:
        """Keep the bytes `source` reads (refusing more than `max_bytes`); the same bytes give the same key."""
        ...

    def open(self, key: str) -> BinaryIO:
        """The blob's bytes (FileNotFoundError: none under that key)."""
        ...

    def delete(self, key: str) -> None:
        """Forget the blob (no error if it is already gone)."""
        ...

    def keys_older_than(self, before: datetime) -> Iterator[str]:
        """Keys of blobs (and leftover partial writes) stored before `before`: what a sweep may look at."""
        ...


class BlobTooLarge(Exception):
    """The source gave more bytes than allowed; nothing was kept."""


class FileBlobStore:
    """Blobs as files under `root`, fanned out by the key's first two hex digits."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise FileNotFoundError(key)  # never a path built from anything but a hex digest
        return self.root / key[:2] / key

    def put(self, source: BinaryIO, *, max_bytes: int) -> Stored:
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(f"more than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            key = digest.hexdigest()
            target = self._path(key)
            target.parent.mkdir(exist_ok=True)
            os.replace(temp, target)  # atomic on one file system; the same bytes replace themselves
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return Stored(key, size)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # a key that is no digest names no file
            self._path(key).unlink(missing_ok=True)

    def keys_older_than(self, before: datetime) -> Iterator[str]:
        if not self.root.is_dir():
            return
        limit = before.astimezone(UTC).timestamp()
        for entry in self.root.iterdir():
            if entry.name.startswith(_TEMP_PREFIX):
                # A write that never finished (a crash mid-upload): nobody will rename it now.
                if entry.stat().st_mtime < limit:
                    entry.unlink(missing_ok=True)
                continue
            if not entry.is_dir() or len(entry.name) != 2:
                continue
            for blob in entry.iterdir():
                if _KEY.match(blob.name) and blob.stat().st_mtime < limit:
                    yield blob.name


_stores: dict[Path, FileBlobStore] = {}


def file_store(var_dir: str | Path) -> FileBlobStore:
    """The desk's attachment store: `attachments/` under its var directory (one object per folder)."""
    root = Path(var_dir).resolve() / "attachments"
    store = _stores.get(root)
    if store is None:
        store = _stores[root] = FileBlobStore(root)
    return store
