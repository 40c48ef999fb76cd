"""Where attachment and inline-image bytes go: a folder of content-addressed files.

A download is streamed into a temporary file while its SHA-256 is computed, then renamed to ``<sha256>``: the same
content is stored once, a crash leaves at most a temporary file (never a half-written blob under a final name), and
writing the same attachment again after a crash is harmless. Records reference a blob as ``blob:<sha256>``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self

__all__ = ["BlobWriter", "FileBlobStore", "StoredBlob"]


@dataclass(frozen=True)
class StoredBlob:
    """A stored file: ``ref`` (``blob:<sha256>``), its digest and size in bytes."""

    ref: str
    sha256: str
    size: int


class BlobWriter:
    """Receives one download chunk by chunk (an awaitable sink); :meth:`finish` stores it under its digest."""

    def __init__(self, store: FileBlobStore, *, max_bytes: int | None = None) -> None:
        """``max_bytes`` stops a download that grows beyond what Graph announced (ValueError)."""
        self._store = store
        self._max_bytes = max_bytes
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._digest = hashlib.sha256()
        self._size = 0
        self._open()

    def _open(self) -> None:
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finish/discard
            dir=self._store.directory, prefix=".partial-", delete=False
        )
        self._digest = hashlib.sha256()
        self._size = 0

    async def restart(self) -> None:
        """Forget what was written (a retried download starts again from the first byte)."""
        self.discard()
        self._open()

    async def __call__(self, chunk: bytes) -> None:
        """Append a chunk."""
        if self._file is None:
            raise RuntimeError("the blob writer is closed")
        self._size += len(chunk)
        if self._max_bytes is not None and self._size > self._max_bytes:
            raise ValueError(f"the download exceeds the announced {self._max_bytes} bytes")
        self._digest.update(chunk)
        self._file.write(chunk)

    def finish(self) -> StoredBlob:
        """Close and move the file to its content address."""
        if self._file is None:
            raise RuntimeError("the blob writer is closed")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self._digest.hexdigest()
        target = self._store.path_of(digest)
        Path(self._file.name).replace(target)
        self._file = None
        return StoredBlob(f"blob:{digest}", digest, self._size)

    def discard(self) -> None:
        """Throw the partial file away."""
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
            self._file = None

    def __enter__(self) -> Self:
        """Discard on error."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Discard whatever was not finished."""
        self.discard()


class FileBlobStore:
    """Content-addressed files in ``directory`` (created on first use)."""

    def __init__(self, directory: str | Path) -> None:
        """Nothing is created until the first write."""
        self.directory = Path(directory)

    def writer(self, *, max_bytes: int | None = None) -> BlobWriter:
        """A writer for one download."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self, max_bytes=max_bytes)

    def path_of(self, sha256: str) -> Path:
        """The file holding a digest's content."""
        return self.directory / sha256

    def open(self, ref: str) -> Path:
        """The file a ``blob:<sha256>`` reference points at. Raises FileNotFoundError."""
        path = self.path_of(ref.removeprefix("blob:"))
        if not path.is_file():
            raise FileNotFoundError(path)
        return path
