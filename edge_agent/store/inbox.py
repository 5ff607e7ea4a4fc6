"""The drop folder: bundles copied in by hand or from a USB stick are installed once their
size has stopped changing; `NAME.result.json` says what happened."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from edge_agent.contract.errors import (
    AgentError,
    BundleCorrupt,
    BundleMissingMember,
)
from edge_agent.contract.files import atomic_write
from edge_agent.store.dropped import copy_regular
from edge_agent.store.store import InstallResult, ModelStore

log = logging.getLogger(__name__)
SUFFIX = ".outpost"
REFUSED = "refused"
INSTALLED = "installed"


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    since: float  # monotonic time the (size, mtime) pair was first seen


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class _Events(FileSystemEventHandler):
    def __init__(self, watcher: InboxWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self._watcher.notify(Path(os.fsdecode(raw)))


class InboxWatcher:
    """Watches `inbox` (watchdog, plus a periodic rescan for file systems that send no
    events) and installs each `*.outpost` file with `store`, activating it."""

    def __init__(self, inbox: Path, store: ModelStore, *, stable_s: float = 2.0,
                 poll_s: float = 0.25, rescan_s: float = 5.0,
                 incomplete_s: float | None = None) -> None:
        self.inbox = Path(inbox)
        self.store = store
        self.stable_s, self.poll_s, self.rescan_s = stable_s, poll_s, rescan_s
        # A file that is not a whole zip may be a copy that stalled (a USB stick pausing):
        # it is retried each time it changes, and refused only once unchanged this long.
        self.incomplete_s = 15 * stable_s if incomplete_s is None else incomplete_s
        self._pending: dict[Path, _Pending] = {}
        self._incomplete: dict[Path, tuple[tuple[int, int] | None, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None

    def start(self) -> None:
        for sub in (self.inbox, self.inbox / REFUSED, self.inbox / INSTALLED):
            sub.mkdir(parents=True, exist_ok=True)
        self._rescan()  # files already present at start
        self._observer = Observer()
        self._observer.schedule(_Events(self), str(self.inbox), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        self._thread = threading.Thread(target=self._run, name="inbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        if self._thread is not None:
            self._thread.join(30)

    def notify(self, path: Path) -> None:
        if path.parent != self.inbox or path.suffix != SUFFIX or path.name.startswith("."):
            return
        with self._lock:
            self._pending.setdefault(path, _Pending(-1, -1, time.monotonic()))
        self._wake.set()

    def _rescan(self) -> None:
        for path in self.inbox.glob(f"*{SUFFIX}"):
            self.notify(path)  # whatever it is: a FIFO or link is refused, not skipped

    def _run(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                waiting = bool(self._pending)
            # Files waiting to settle are looked at every poll_s; with none, the thread
            # sleeps until an event or the next rescan (an idle agent stays asleep).
            self._wake.wait(self.poll_s if waiting else
                            max(0.0, self.rescan_s - (time.monotonic() - last_scan)))
            self._wake.clear()
            if time.monotonic() - last_scan >= self.rescan_s:
                self._rescan()
                last_scan = time.monotonic()
            for path in self._stable_files():
                if self._stop.is_set():
                    return
                try:
                    self._process(path)
                except Exception:  # keep watching whatever one file did
                    log.exception("inbox: processing %s failed", shown(path.name))

    def _stable_files(self) -> list[Path]:
        now, ready = time.monotonic(), []
        with self._lock:
            for path, seen in list(self._pending.items()):
                sig = _signature(path)
                if sig is None:
                    del self._pending[path]
                elif sig != (seen.size, seen.mtime_ns):
                    self._pending[path] = _Pending(*sig, now)
                elif now - seen.since >= self.stable_s:
                    ready.append(path)
                    del self._pending[path]
        return ready

    def _install(self, path: Path) -> InstallResult:
        """Install a private copy of the file (see edge_agent.store.dropped)."""
        copy = self.store.upload_path()
        try:
            copy_regular(path, copy, self.store.limits.max_bundle_bytes)
            return self.store.install(copy, activate=True)
        finally:
            copy.unlink(missing_ok=True)

    def _still_arriving(self, path: Path, exc: AgentError) -> bool:
        """Whether a file that did not read as a whole bundle may still be copying: it
        then waits in the inbox for another try instead of being refused."""
        if not isinstance(exc, BundleCorrupt | BundleMissingMember):
            return False
        sig, now = _signature(path), time.monotonic()
        first_sig, since = self._incomplete.get(path, (None, now))
        if first_sig != sig:
            since = now  # it changed since the last try: the copy is moving
        if now - since >= self.incomplete_s:
            return False
        self._incomplete[path] = (sig, since)
        with self._lock:
            self._pending[path] = _Pending(*(sig or (-1, -1)), now)
        return True

    def _process(self, path: Path) -> None:
        doc: dict[str, Any] = {"file": path.name}
        try:
            result = self._install(path)
        except AgentError as exc:
            if self._still_arriving(path, exc):
                return
            doc.update(status="refused", error=str(exc), error_type=type(exc).__name__)
            log.warning("inbox: refused %s: %s", shown(path.name), shown(str(exc)))
        else:
            doc.update(status="installed", model=result.model, version=result.version,
                       active=result.status == "active",
                       already_installed=result.already_installed)
            log.info("inbox: installed %s (%s %d)", shown(path.name), result.model,
                     result.version)
        self._incomplete.pop(path, None)
        doc["time"] = datetime.now(UTC).isoformat(timespec="seconds")
        stem = path.name[: -len(SUFFIX)]
        # Move, then write the result: the result file is the "done" signal a person or
        # script waits for, so by then the bundle has left the inbox. (A crash in between
        # leaves the bundle moved without a result; the agent's status and log still say.)
        target = self.inbox / (REFUSED if doc["status"] == "refused" else INSTALLED)
        os.replace(path, _free_name(target, path.name))
        atomic_write(self.inbox / f"{stem}.result.json",
                     json.dumps(doc, indent=2).encode() + b"\n")


def shown(text: str) -> str:
    """Text from outside (a file name, a message quoting it) as it may appear in a log
    line: control characters escaped, so a name cannot start a forged line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _free_name(folder: Path, name: str) -> Path:
    candidate, n = folder / name, 1
    while candidate.exists():
        candidate = folder / f"{name[: -len(SUFFIX)]}.{n}{SUFFIX}"
        n += 1
    return candidate
