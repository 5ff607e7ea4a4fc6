"""Content-addressed object store: files named by the sha256 of their bytes.

Every object is written to a temporary file in the store, fsynced and renamed
into place, so a crash or a full disk never leaves a half-written object under
its final name.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from core.errors import NotFound, StorageError
from edge_agent.contract.files import fsync_dir

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"

    def ensure(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def require(self, sha: str) -> Path:
        path = self.path(sha)
        if not path.is_file():
            raise NotFound(f"object {sha[:12]} is missing from the object store {self.root}")
        return path

    @contextmanager
    def temp_path(self, suffix: str = "") -> Iterator[Path]:
        """A path in the store's temp folder, removed afterwards unless adopted."""
        self.ensure()
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, suffix=suffix)
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def digest(self, tmp: Path) -> str:
        """The sha256 of a finished temp file, for ``adopt``; a caller may run it in a thread
        beside other reads of the file (read-only: DuckDB on Windows shares its read handles
        with readers only)."""
        try:
            return sha256_file(tmp)
        except OSError as exc:
            raise self._write_error(exc) from exc

    def adopt(self, tmp: Path, sha: str | None = None) -> tuple[str, bool]:
        """Move a finished temp file into the store. Returns (sha256, newly_created).

        ``sha``: what ``digest(tmp)`` returned, when the caller has it already.
        """
        sha = sha or self.digest(tmp)
        try:
            final = self.path(sha)
            if final.is_file():
                tmp.unlink()
                return sha, False
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)
            return sha, True
        except OSError as exc:
            raise self._write_error(exc) from exc

    def put_bytes(self, data: bytes) -> tuple[str, bool]:
        with self.temp_path() as tmp:
            try:
                tmp.write_bytes(data)
            except OSError as exc:
                raise self._write_error(exc) from exc
            return self.adopt(tmp)

    def put_stream(self, src: BinaryIO) -> tuple[str, bool]:
        with self.temp_path() as tmp:
            try:
                with tmp.open("wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            except OSError as exc:
                raise self._write_error(exc) from exc
            return self.adopt(tmp)

    def _write_error(self, exc: OSError) -> StorageError:
        return StorageError(f"could not write object to {self.root}: {exc.strerror or exc}")

    def discard(self, sha: str) -> None:
        """Remove an object that a failed transaction had just created."""
        self.path(sha).unlink(missing_ok=True)
