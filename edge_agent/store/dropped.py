"""Taking a file someone dropped into the inbox: regular files only, copied privately.

A FIFO named `x.outpost` would block whoever opens it; a device may never end; a link
may point anywhere or loop. So the inbox looks with `lstat`, opens with
`O_NONBLOCK | O_NOFOLLOW` (and checks again with `fstat`, in case the name changed in
between), and copies the bytes into the store's staging folder before the store (and
its lock) ever sees them: what is verified and installed is a file nobody else can
change or block.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from edge_agent.contract.errors import BundleCorrupt, BundleNotRegularFile, BundleTooLarge

_CHUNK = 1024 * 1024
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a link"}


def _not_regular(mode: int) -> BundleNotRegularFile:
    what = _KINDS.get(stat.S_IFMT(mode), "not a plain file")
    return BundleNotRegularFile(f"not a regular file ({what}): refused")


def copy_regular(path: Path, dest: Path, limit: int) -> tuple[int, int]:
    """Copy the regular file at `path` to the new file `dest`; returns the (size, mtime_ns)
    it had when opened. BundleNotRegularFile for anything else, BundleTooLarge past
    `limit` bytes."""
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise _not_regular(stat.S_IFLNK if exc.errno == errno.ELOOP else 0) from None
        raise BundleCorrupt(f"cannot read the file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(src.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(st.st_mode)
        if st.st_size > limit:
            raise BundleTooLarge(f"bundle is {st.st_size} bytes (limit {limit})")
        copied = 0
        with dest.open("xb") as out:
            while chunk := src.read(_CHUNK):
                copied += len(chunk)
                if copied > limit:
                    raise BundleTooLarge(f"bundle grew past the {limit} byte limit")
                out.write(chunk)
    return st.st_size, st.st_mtime_ns
