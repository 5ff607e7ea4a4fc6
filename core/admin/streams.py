"""Text streams that carry a forwarded command's output back to its client, and the
routing of ``sys.stdout``/``sys.stderr`` by thread so that ``print`` finds them."""
from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from core.admin.frames import FrameWriter


class ClientBytes(io.RawIOBase):
    """The binary side (``sys.stdout.buffer``) of a client stream."""

    def __init__(self, writer: FrameWriter, kind: bytes, tty: bool) -> None:
        super().__init__()
        self._writer, self._kind, self._tty = writer, kind, tty

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        payload = bytes(data)
        self._writer.send(self._kind, payload)
        return len(payload)

    def isatty(self) -> bool:
        return self._tty


class ClientStream(io.TextIOBase):
    """stdout or stderr of the client, as the forwarded command sees it: writes become
    frames, and ``isatty()`` answers for the client's terminal."""

    def __init__(self, writer: FrameWriter, kind: bytes, tty: bool) -> None:
        super().__init__()
        self.buffer = ClientBytes(writer, kind, tty)

    encoding = "utf-8"
    errors = "replace"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer.write(text.encode("utf-8", "replace"))
        return len(text)

    def isatty(self) -> bool:
        return self.buffer.isatty()


class _Routed(io.TextIOBase):
    """Installed as ``sys.stdout``/``sys.stderr``: a thread that runs a forwarded command
    writes to its client, every other thread to the stream that was there before."""

    def __init__(self, fallback: TextIO | io.TextIOBase, local: threading.local,
                 which: str) -> None:
        super().__init__()
        self._fallback, self._local, self._which = fallback, local, which

    def _target(self) -> Any:
        target = getattr(self._local, self._which, None)
        return self._fallback if target is None else target

    @property
    def buffer(self) -> Any:
        return self._target().buffer

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target().encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._target().errors

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()

    def fileno(self) -> int:
        return self._target().fileno()


_local = threading.local()
_install_lock = threading.Lock()


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Routed):
            sys.stdout = _Routed(sys.stdout, _local, "stdout")
        if not isinstance(sys.stderr, _Routed):
            sys.stderr = _Routed(sys.stderr, _local, "stderr")


@contextlib.contextmanager
def routed(stdout: io.TextIOBase, stderr: io.TextIOBase) -> Iterator[None]:
    """While inside, this thread's ``sys.stdout``/``sys.stderr`` are the ones given."""
    _install()
    _local.stdout, _local.stderr = stdout, stderr
    try:
        yield
    finally:
        _local.stdout = _local.stderr = None
