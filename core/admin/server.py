"""The holder's side: accept the owner's connections and run each command on a thread."""
from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.admin.frames import (
    ACCEPTED,
    CANCEL,
    EXIT,
    REFUSED,
    REQUEST,
    STDERR,
    STDOUT,
    FrameError,
    FrameWriter,
    recv_frame,
)
from core.admin.sockets import peer_uid, private_folder, socket_path
from core.admin.streams import ClientStream
from core.config import Settings
from core.errors import OutpostError
from core.progress import CancelToken

# A cancelled command that took its cancel token stops at its next unit of work; one that
# did not is interrupted, as Ctrl-C interrupts a lone CLI, if still running this long after.
INTERRUPT_AFTER_S = 0.5
_HANDSHAKE_S = 10.0


@dataclass(frozen=True)
class Request:
    """What a client asks: its argv, and what of its terminal and environment matters."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdout_tty: bool = False
    stderr_tty: bool = False
    width: int = 80
    height: int = 25

    @classmethod
    def from_json(cls, raw: bytes) -> Request:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("argv"), list):
            raise FrameError("admin request without argv")
        env = data.get("env") or {}
        return cls([str(a) for a in data["argv"]], str(data.get("cwd") or "/"),
                   {str(k): str(v) for k, v in env.items()}, bool(data.get("stdout_tty")),
                   bool(data.get("stderr_tty")), int(data.get("width") or 80),
                   int(data.get("height") or 25))

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)


@dataclass(eq=False)
class Session:
    """One forwarded command while it runs in the holder."""

    request: Request
    stdout: ClientStream
    stderr: ClientStream
    cancel: CancelToken = field(default_factory=CancelToken)
    _thread: threading.Thread = field(default_factory=threading.current_thread)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finished: bool = False
    _token_taken: bool = False

    def take_cancel_token(self) -> CancelToken:
        """For a command that checks the token itself: it will not be interrupted."""
        self._token_taken = True
        return self.cancel

    def request_cancel(self) -> None:
        """Set the token now; interrupt the command if it is still running a bit later."""
        if self.cancel.cancelled:
            return
        self.cancel.cancel()
        timer = threading.Timer(INTERRUPT_AFTER_S, self._interrupt)
        timer.daemon = True
        timer.start()

    def _interrupt(self) -> None:
        with self._lock:
            if self._finished or self._token_taken or self._thread.ident is None:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread.ident), ctypes.py_object(KeyboardInterrupt))

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished

    def finish(self) -> None:
        with self._lock:
            self._finished = True


Handler = Callable[[Session], int]


class AdminServer:
    """Listens on the home's admin socket while this process holds the catalog."""

    def __init__(self, settings: Settings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self.path = socket_path(settings)
        self.completed = 0  # forwarded commands finished; the GUI polls it to refresh
        self._sock: socket.socket | None = None
        self._sessions: set[Session] = set()
        self._changed = threading.Condition()
        self._closing = False

    def start(self) -> AdminServer:
        if self.path.parent != self.settings.home:
            private_folder(self.path.parent)
        else:
            self.settings.home.mkdir(parents=True, exist_ok=True)
        # This process holds the catalog, so a socket file here is a crashed holder's.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise OutpostError(f"cannot listen on {self.path}: {exc.strerror}") from None
        self._sock = sock
        threading.Thread(target=self._accept, args=(sock,), name="admin-accept",
                         daemon=True).start()
        return self

    @property
    def running(self) -> int:
        with self._changed:
            return len(self._sessions)

    def stop(self, cancel: bool = False, timeout: float | None = None) -> bool:
        """Stop listening once no forwarded command runs (`cancel`: cancel them first);
        False if some still ran after `timeout` seconds."""
        with self._changed:
            self._closing = True
            if cancel:
                for session in self._sessions:
                    session.request_cancel()
            drained = self._changed.wait_for(lambda: not self._sessions, timeout)
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        return drained

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="admin-command",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            writer = FrameWriter(conn)
            try:
                request = self._handshake(conn)
            except (OSError, ValueError, TypeError, OutpostError) as exc:
                writer.send(REFUSED, f"refused: {exc}".encode())
                return
            session = Session(request, ClientStream(writer, STDOUT, request.stdout_tty),
                              ClientStream(writer, STDERR, request.stderr_tty))
            with self._changed:
                if self._closing and self._sock is None:
                    return  # closed meanwhile: the client sees no answer and retries
                self._sessions.add(session)
            try:
                writer.send(ACCEPTED, orjson.dumps({"pid": os.getpid()}))
                threading.Thread(target=self._watch, args=(conn, session),
                                 name="admin-watch", daemon=True).start()
                code = self._run(session)
                with self._changed:  # counted before the client hears the end
                    self.completed += 1
                writer.send(EXIT, str(code).encode())
            finally:
                with self._changed:
                    self._sessions.discard(session)
                    self._changed.notify_all()

    def _handshake(self, conn: socket.socket) -> Request:
        if peer_uid(conn) != os.geteuid():
            raise OutpostError("only the owner of this Outpost home may use it")
        conn.settimeout(_HANDSHAKE_S)
        frame = recv_frame(conn)
        conn.settimeout(None)
        if frame is None or frame[0] != REQUEST:
            raise FrameError("no admin request")
        return Request.from_json(frame[1])

    def _run(self, session: Session) -> int:
        try:
            try:
                return self.handler(session)
            finally:
                session.finish()
        except KeyboardInterrupt:  # the interrupt landed after the command's own handling
            return 130

    @staticmethod
    def _watch(conn: socket.socket, session: Session) -> None:
        """Ctrl-C from the client, or the client gone: cancel the command."""
        while True:
            try:
                frame: tuple[bytes, Any] | None = recv_frame(conn)
            except (OSError, OutpostError):
                frame = None
            if frame is None or frame[0] == CANCEL:
                if not session.finished:
                    session.request_cancel()
                if frame is None:
                    return
