"""The client's side: send the command to the holder and relay what comes back."""
from __future__ import annotations

import contextlib
import os
import socket
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


def forward(settings: Settings, request: Request, stdout: BinaryIO, stderr: BinaryIO) -> int:
    """Run `request` in the process that holds the catalog; its exit code."""
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
        return _relay(sock, pid, stdout, stderr)


def _relay(sock: socket.socket, pid: int, stdout: BinaryIO, stderr: BinaryIO) -> int:
    cancelled = False
    while True:
        try:
            frame = recv_frame(sock)
        except KeyboardInterrupt:
            if cancelled:  # the second Ctrl-C: stop waiting (the holder cancels on close)
                raise
            cancelled = True
            with contextlib.suppress(OSError):
                send_frame(sock, CANCEL)
            continue
        except OSError:
            frame = None
        if frame is None:
            raise HolderGone(pid)
        kind, payload = frame
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
