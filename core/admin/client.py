"""The client's side: send the command to the holder and relay what comes back."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import BinaryIO

import orjson

from core.admin.frames import (
    ACCEPTED,
    CANCEL,
    EXIT,
    REFUSED,
    REQUEST,
    STDERR,
    STDOUT,
    recv_frame,
    send_frame,
)
from core.admin.server import Request
from core.admin.sockets import socket_path
from core.config import Settings
from core.errors import OutpostError

_HANDSHAKE_S = 10.0


class NoHolder(Exception):  # noqa: N818 (a state, not a failure the user sees)
    """Nobody answers on the admin socket (none there, a crashed holder's, or closing)."""


class HolderGone(OutpostError):
    """The holder stopped while it ran this command."""

    def __init__(self, pid: int) -> None:
        super().__init__(
            f"the Outpost process that holds the catalog (pid {pid}) stopped while it ran "
            "this command; check what it did, then run the command again")


class Refused(OutpostError):
    """The holder would not run the command."""


def _connect(settings: Settings) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_HANDSHAKE_S)
    try:
        sock.connect(str(socket_path(settings)))
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
        sock.close()
        raise NoHolder(str(exc)) from None
    except OSError as exc:
        sock.close()
        raise OutpostError(f"cannot reach the Outpost process that holds the catalog at "
                           f"{socket_path(settings)}: {exc.strerror}") from None
    return sock


def forward(settings: Settings, request: Request, stdout: BinaryIO, stderr: BinaryIO,
            spelled: dict[str, str] | None = None) -> int:
    """Run `request` in the process that holds the catalog; its exit code. `spelled` maps
    text in the output back to how the user wrote it (paths the client made absolute)."""
    with contextlib.closing(_connect(settings)) as sock:
        try:
            send_frame(sock, REQUEST, request.to_json())
            first = recv_frame(sock)
        except (OSError, TimeoutError):
            first = None
        if first is None:
            raise NoHolder("closed before answering")
        if first[0] == REFUSED:
            raise Refused(first[1].decode("utf-8", "replace"))
        if first[0] != ACCEPTED:
            raise Refused("the admin socket answered something else than Outpost")
        pid = int(orjson.loads(first[1]).get("pid", 0))
        sock.settimeout(None)
        back = sorted(((os.fsencode(new), os.fsencode(old)) for new, old in
                       (spelled or {}).items()), key=lambda pair: -len(pair[0]))
        with _ctrl_c_cancels(sock):
            return _relay(sock, pid, stdout, stderr, back)


@contextlib.contextmanager
def _ctrl_c_cancels(sock: socket.socket) -> Iterator[None]:
    """The first Ctrl-C asks the holder to cancel (its answer still comes, with the exit
    code); a second one stops waiting (closing the connection cancels it too)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = 0

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            raise KeyboardInterrupt
        with contextlib.suppress(OSError):
            send_frame(sock, CANCEL)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _relay(sock: socket.socket, pid: int, stdout: BinaryIO, stderr: BinaryIO,
           back: list[tuple[bytes, bytes]]) -> int:
    while True:
        try:
            frame = recv_frame(sock)
        except OSError:
            frame = None
        if frame is None:
            raise HolderGone(pid)
        kind, payload = frame
        for new, old in back:
            payload = payload.replace(new, old)
        try:
            if kind == STDOUT:
                stdout.write(payload)
                stdout.flush()
            elif kind == STDERR:
                stderr.write(payload)
                stderr.flush()
        except BrokenPipeError:  # `| head`: as click does alone, exit 1 quietly
            _quiet(stdout if kind == STDOUT else stderr)
            return 1  # closing the connection cancels the command in the holder
        if kind == EXIT:
            return int(payload or b"1")


def _quiet(stream: BinaryIO) -> None:
    """Point a closed pipe at /dev/null, so that flushing at exit raises nothing."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
