"""Background work: core functions run on Qt's thread pool through superqt workers.

Every task gets a :class:`TaskContext`: its own catalog connection (DuckDB refuses
a connection shared between threads that are busy at once), a progress callback
and a cancel token — the same ``core.progress`` mechanism the CLI feeds into rich.
Results and errors come back to the UI thread as queued signals; errors go to the
one :class:`~app.errors.ErrorSink`, a cancellation only to the status bar.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import FunctionWorker

from app.errors import ErrorSink
from core.catalog import Catalog
from core.errors import Cancelled
from core.progress import CancelToken, ProgressEvent

_PROGRESS_INTERVAL_S = 0.05  # enough for a smooth bar, few enough signals to never flood the loop


@dataclass
class TaskContext:
    catalog: Catalog
    progress: Callable[[ProgressEvent], None]
    cancel: CancelToken


class _Worker(FunctionWorker[Any]):
    """superqt's FunctionWorker without its per-run ``warnings.catch_warnings()``.

    That context manager swaps the process-wide warning filters from the worker
    thread; with two workers running it restores them out of order and leaves
    every thread's warnings routed to a finished worker.
    """

    def run(self) -> None:
        self.started.emit()
        try:
            self.returned.emit(self.work())
        except Exception as exc:  # handed to the UI thread, which decides what the user sees
            self.errored.emit(exc)
        self.finished.emit()
        self._finished.emit(self)


class Task(QObject):
    """One piece of background work, with its progress and its cancel token."""

    progressed = Signal(object)  # ProgressEvent, at most every 50 ms
    ended = Signal(str)  # "done", "failed" or "cancelled"

    def __init__(self, title: str, visible: bool, key: str | None) -> None:
        super().__init__()
        self.title = title
        self.visible = visible
        self.key = key
        self.token = CancelToken()
        self.last: ProgressEvent | None = None
        self.outcome: str | None = None
        self._emitted_at = 0.0

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def running(self) -> bool:
        return self.outcome is None

    def progress(self, event: ProgressEvent) -> None:
        """Called from the worker thread; throttled so a tight loop cannot flood the UI."""
        now = time.monotonic()
        stage_changed = self.last is None or self.last.stage != event.stage
        finished = event.total is not None and event.done >= event.total
        self.last = event
        if stage_changed or finished or now - self._emitted_at >= _PROGRESS_INTERVAL_S:
            self._emitted_at = now
            self.progressed.emit(event)


class TaskRunner(QObject):
    """Starts tasks, tracks the running ones, cancels them all on quit."""

    started = Signal(object)  # Task
    ended = Signal(object)  # Task
    message = Signal(str)  # a line for the status bar

    def __init__(self, catalog: Catalog, sink: ErrorSink) -> None:
        super().__init__()
        self.catalog = catalog
        self.sink = sink
        self.tasks: list[Task] = []
        self._latest: dict[str, Task] = {}
        self._ids = itertools.count(1)

    def run(
        self,
        title: str,
        fn: Callable[[TaskContext], Any],
        on_done: Callable[[Any], None] | None = None,
        *,
        on_error: Callable[[Exception], bool] | None = None,
        visible: bool = True,
        key: str | None = None,
    ) -> Task:
        """Run ``fn(context)`` on the pool; ``on_done(result)`` runs on the UI thread.

        ``on_error`` may handle an error itself (an inline message) by returning True.
        With a ``key``, a later task of the same key supersedes this one's result.
        ``visible`` tasks show in the status bar with progress and cancel.
        """
        task = Task(title, visible, key)
        task.setObjectName(f"task-{next(self._ids)}")
        if key is not None:
            self._latest[key] = task
        # Its own cursor, sharing the window catalog's write turn: two tasks writing one row
        # at once (a pull and a poll recording an agent's state) take turns instead of one
        # failing with DuckDB's "Conflict on update".
        own = self.catalog.for_thread()
        context = TaskContext(own, task.progress, task.token)

        def work() -> Any:
            try:
                return fn(context)
            finally:
                own.close()

        worker = _Worker(work)
        worker.returned.connect(lambda result: self._returned(task, result, on_done))
        worker.errored.connect(lambda exc: self._errored(task, exc, on_error))
        self.tasks.append(task)
        self.started.emit(task)
        worker.start()
        return task

    def _superseded(self, task: Task) -> bool:
        return task.key is not None and self._latest.get(task.key) is not task

    def _returned(self, task: Task, result: Any, on_done: Callable[[Any], None] | None) -> None:
        try:
            if task.token.cancelled and task.visible:
                self.message.emit(f"{task.title}: cancelled")
            elif on_done is not None and not self._superseded(task):
                on_done(result)
        except Exception as exc:  # a bug in a view's handler: show it, keep the window alive
            self.sink.report(exc, task.title)
        finally:
            self._end(task, "done")

    def _errored(self, task: Task, exc: Exception, on_error: Callable[[Exception], bool] | None
                 ) -> None:
        if isinstance(exc, Cancelled):
            self.message.emit(f"{task.title}: cancelled")
            self._end(task, "cancelled")
            return
        try:
            handled = on_error is not None and not self._superseded(task) and on_error(exc)
        except Exception as handler_exc:
            self.sink.report(handler_exc, task.title)
            handled = True
        if not handled and not self._superseded(task):
            self.sink.report(exc, task.title)
        self._end(task, "failed")

    def _end(self, task: Task, outcome: str) -> None:
        task.outcome = outcome
        if task in self.tasks:
            self.tasks.remove(task)
        if task.key is not None and self._latest.get(task.key) is task:
            del self._latest[task.key]
        task.ended.emit(outcome)
        self.ended.emit(task)

    def running(self) -> list[Task]:
        return list(self.tasks)

    def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything and wait for the pool; True when every worker has stopped."""
        self.cancel_all()
        return QThreadPool.globalInstance().waitForDone(timeout_ms)
