"""Where the admin socket lives, and who may connect to it."""
from __future__ import annotations

import hashlib
import os
import socket
import stat
import struct
import tempfile
from pathlib import Path

from core.config import Settings
from core.errors import OutpostError

SOCKET_NAME = "admin.sock"
# sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included.
_MAX_PATH = 100
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


class AdminSocketUnsafe(OutpostError):
    """The folder for the admin socket belongs to someone else or is open to others."""


def socket_path(settings: Settings) -> Path:
    """``$OUTPOST_HOME/admin.sock``; a home too deep for a socket name gets a private
    folder of this user's in the temp dir instead, named after the home's path."""
    path = settings.home / SOCKET_NAME
    if len(os.fsencode(path)) <= _MAX_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(settings.home)).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"outpost-{os.geteuid()}" / f"{digest}.sock"


def private_folder(folder: Path) -> None:
    """Create the temp-dir folder 0700 if missing; refuse one owned by another user or
    open to others (another user could swap the socket there for one of theirs)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise AdminSocketUnsafe(f"{folder} is not a folder of this user's")
    if info.st_mode & 0o077:
        raise AdminSocketUnsafe(f"{folder} is open to other users (mode "
                                f"{stat.S_IMODE(info.st_mode):o}); make it 0700")


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a connected Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(raw)
    return int(uid)
