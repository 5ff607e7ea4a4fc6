"""Shared pieces of the GUI tests: a catalog, a real main window, a UI-thread heartbeat.

Test modules import ``catalog_fixture`` and ``make_window_fixture``; the fixtures are
named ``catalog`` and ``make_window``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from app.main import create_window
from app.views.base import View
from app.views.fleet import FleetView
from app.window import MainWindow
from core.catalog import Catalog
from core.config import Settings


@pytest.fixture(name="catalog")
def catalog_fixture(outpost_home: Path) -> Iterator[Catalog]:
    cat = Catalog.open(Settings.from_env())
    yield cat
    QThreadPool.globalInstance().waitForDone(30_000)
    cat.close()


@pytest.fixture(name="make_window")
def make_window_fixture(qtbot: QtBot, qapp: QApplication, catalog: Catalog
                ) -> Iterator[Callable[..., MainWindow]]:
    """``make_window([DatasetsView])`` builds and shows the real window over this test's catalog."""
    windows: list[MainWindow] = []

    def make(views: list[type[View]] | None = None) -> MainWindow:
        window = create_window(catalog, qapp, views)
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    yield make
    for window in windows:
        for dialog in list(window.ctx.sink.dialogs):
            dialog.close()
        window.close()
        window.deleteLater()


def error_dialogs(window: MainWindow) -> list[QMessageBox]:
    return [d for d in window.ctx.sink.dialogs if d.isVisible()]


def dismiss_errors(window: MainWindow) -> list[str]:
    """Close every error dialog; returns their messages."""
    messages = []
    for dialog in list(window.ctx.sink.dialogs):
        messages.append(dialog.text())
        dialog.done(0)
    return messages


class Heartbeat:
    """A 10 ms timer on the UI thread. Per gap between beats it records the wall time and
    the UI thread's own CPU time: work done on the UI thread shows in both, while a busy
    machine not scheduling this process shows in wall time only."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._beat)
        self.last = self.last_cpu = 0.0
        self.max_gap_ms = 0.0  # longest the loop went unserved, wall clock
        self.max_busy_ms = 0.0  # most UI-thread CPU spent in one gap
        self.beats = 0

    def _beat(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if self.last:
            self.max_gap_ms = max(self.max_gap_ms, (now - self.last) * 1000)
            self.max_busy_ms = max(self.max_busy_ms, (cpu - self.last_cpu) * 1000)
        self.last, self.last_cpu = now, cpu
        self.beats += 1

    def assert_responsive(self, limit_ms: float, what: str) -> None:
        """No gap in which the UI thread itself worked `limit_ms`, and none (whatever
        held it: its own work, a lock, the GIL) five times that long on the wall clock —
        which scheduler noise on a loaded machine does not reach, and a freeze does."""
        assert self.max_busy_ms < limit_ms, \
            f"UI thread busy {self.max_busy_ms:.0f} ms without serving its loop {what}"
        assert self.max_gap_ms < 5 * limit_ms, \
            f"UI thread stalled {self.max_gap_ms:.0f} ms {what}"

    def __enter__(self) -> Heartbeat:
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()


def show_fleet(window: MainWindow) -> FleetView:
    """The window's Fleet view, shown."""
    view = window.view(FleetView)
    assert isinstance(view, FleetView)
    window.show_view(window.views.index(view))
    return view
