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
    """A 10 ms timer on the UI thread; ``max_gap_ms`` is the longest the loop went unserved."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._beat)
        self.last = 0.0
        self.max_gap_ms = 0.0
        self.beats = 0

    def _beat(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.max_gap_ms = max(self.max_gap_ms, (now - self.last) * 1000)
        self.last = now
        self.beats += 1

    def __enter__(self) -> Heartbeat:
        self.last = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()
