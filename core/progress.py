"""Progress reporting and cancellation for long work, shared by the CLI and the GUI.

A long core function takes ``progress`` and ``cancel`` and calls them between
units of work; the CLI feeds a rich progress bar, the GUI a worker signal.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    done: float
    total: float | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


ProgressFn = Callable[[ProgressEvent], None]


class CancelToken:
    """Set from any thread; checked by the worker between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, what: str = "operation") -> None:
        if self._event.is_set():
            raise Cancelled(what)


def report(progress: ProgressFn | None, stage: str, done: float,
           total: float | None = None) -> None:
    if progress is not None:
        progress(ProgressEvent(stage, done, total))


def check(cancel: CancelToken | None, what: str = "operation") -> None:
    if cancel is not None:
        cancel.raise_if_cancelled(what)
