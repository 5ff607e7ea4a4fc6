"""One process changes an agent folder at a time.

A serving agent holds its telemetry outbox's next sequence number, its model store and
its open histogram windows in memory. A second process writing the same folder — a
second `serve`, or `outpost-agent install` while the agent runs — would hand out
sequence numbers the agent is about to use (its next outbox write then fails for good
with a UNIQUE conflict) and install versions the agent never loads. So `serve` and
`install` take an exclusive lock on ``DIR/agent.lock`` for as long as they run; the
kernel drops it when the process ends, however it ends (kill -9 included), so a crash
never leaves the folder locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from edge_agent.contract.errors import AgentError

LOCK_FILE = "agent.lock"


class FolderInUse(AgentError):
    """Another process holds the agent folder."""


class FolderLock:
    def __init__(self, agent_dir: Path, purpose: str) -> None:
        self.path = agent_dir / LOCK_FILE
        self.purpose = purpose
        self._file: IO[str] | None = None

    def acquire(self, busy_hint: str) -> FolderLock:
        """Take the lock or raise FolderInUse naming the holder and `busy_hint`."""
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise FolderInUse(f"{self.path.parent} is in use by {holder}: {busy_hint}") from None
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.purpose} (pid {os.getpid()})\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
