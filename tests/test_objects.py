"""The content-addressed object store never leaves a half-written object."""
from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import pytest

from core.errors import StorageError
from core.objects import ObjectStore


def test_objects_are_named_by_content_and_deduplicated(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    sha, new = store.put_bytes(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert new and store.path(sha).read_bytes() == b"hello"
    again, new_again = store.put_stream(io.BytesIO(b"hello"))
    assert (again, new_again) == (sha, False)
    assert list(store.tmp_dir.iterdir()) == []


def test_failed_write_leaves_no_object_and_no_temp(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = ObjectStore(tmp_path / "objects")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        store.put_bytes(b"payload")
    assert not store.exists(hashlib.sha256(b"payload").hexdigest())
    assert list(store.tmp_dir.iterdir()) == []
