"""Frames on the admin socket: one type byte, a 4-byte big-endian length, the payload."""
from __future__ import annotations

import socket
import struct
import threading

from core.errors import OutpostError

_HEADER = struct.Struct(">cI")
MAX_FRAME = 1 << 20

REQUEST = b"q"  # client → holder: the command (JSON)
CANCEL = b"c"  # client → holder: Ctrl-C
ACCEPTED = b"a"  # holder → client: the command started (JSON: holder pid)
REFUSED = b"r"  # holder → client: one line, why not (then the connection closes)
STDOUT = b"o"
STDERR = b"e"
EXIT = b"x"  # holder → client: the exit code (ASCII digits); the last frame


class FrameError(OutpostError):
    """The other side sent something that is not a frame of this protocol."""


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The next frame, or None when the other side closed the connection."""
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    kind, length = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"admin frame of {length} bytes is over the {MAX_FRAME} limit")
    payload = _recv_exactly(sock, length) if length else b""
    if payload is None:
        return None
    return kind, payload


def send_frame(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    """One frame (a payload over MAX_FRAME goes as several of the same kind)."""
    for start in range(0, max(len(payload), 1), MAX_FRAME):
        part = payload[start:start + MAX_FRAME]
        sock.sendall(_HEADER.pack(kind, len(part)) + part)


class FrameWriter:
    """Sends frames from several threads (stdout, stderr, a progress refresher) in turn."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.broken = False

    def send(self, kind: bytes, payload: bytes = b"") -> bool:
        """False once the other side has gone; later frames are dropped."""
        with self._lock:
            if self.broken:
                return False
            try:
                send_frame(self._sock, kind, payload)
            except OSError:
                self.broken = True
                return False
            return True
