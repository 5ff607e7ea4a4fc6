"""The main window shell: status bar, background tasks, the error sink, themes, quitting."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox
from pytestqt.qtbot import QtBot

from app.about import AboutDialog
from app.main import create_window, run_gui
from app.qt_compat import PINNED
from app.tasks import TaskContext
from app.window import MainWindow
from core.errors import InvalidInput
from core.progress import check, report
from tests.support.gui import (  # noqa: F401 (fixtures)
    Heartbeat,
    catalog_fixture,
    dismiss_errors,
    error_dialogs,
    make_window_fixture,
)


def _slow(ctx: TaskContext, seen: dict[str, bool], steps: int = 400) -> int:
    """Work the way core does it: report progress, check the token between units."""
    for i in range(steps):
        check(ctx.cancel, "slow work")
        report(ctx.progress, "counting", i, steps)
        ctx.catalog.con.execute("SELECT 1").fetchall()
        time.sleep(0.01)
        seen["ran"] = True
    return steps


def test_status_bar_shows_catalog_and_task_progress_with_cancel(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([])
    assert str(window.ctx.catalog.path) in window.catalog_label.text()
    seen: dict[str, bool] = {}
    task = window.ctx.tasks.run("Slow work", lambda ctx: _slow(ctx, seen))
    item = window.task_bar.items[task]
    qtbot.waitUntil(lambda: item.bar.maximum() == 1000 and item.bar.value() > 0, timeout=5000)
    assert "counting" in item.label.text()
    qtbot.mouseClick(item.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: task.outcome is not None, timeout=5000)
    assert task.outcome == "cancelled"
    assert task not in window.task_bar.items
    assert "cancelled" in window.statusBar().currentMessage()
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]


def test_worker_error_shows_one_line_with_details_and_logs_traceback(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([])

    def fail(ctx: TaskContext) -> None:
        raise InvalidInput("column 'x' does not exist")

    window.ctx.tasks.run("Derive", fail)
    qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=5000)
    dialog = error_dialogs(window)[0]
    assert dialog.text() == "column 'x' does not exist"
    assert "Traceback" in dialog.detailedText() and "fail" in dialog.detailedText()
    log = window.ctx.sink.log_path.read_text()
    assert "column 'x' does not exist" in log and "Traceback" in log

    def bug(ctx: TaskContext) -> None:
        raise KeyError("boom")

    window.ctx.tasks.run("Bug", bug)
    qtbot.waitUntil(lambda: len(error_dialogs(window)) == 2, timeout=5000)
    assert error_dialogs(window)[1].text() == "internal error: KeyError: 'boom'"
    dismiss_errors(window)
    # The window is still usable: another task runs and returns.
    results: list[int] = []
    window.ctx.tasks.run("Again", lambda ctx: 7, results.append)
    qtbot.waitUntil(lambda: results == [7], timeout=5000)


def test_quitting_while_a_task_runs_cancels_it(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([])
    seen: dict[str, bool] = {}
    task = window.ctx.tasks.run("Slow work", lambda ctx: _slow(ctx, seen, steps=3000))
    qtbot.waitUntil(lambda: seen.get("ran", False), timeout=5000)
    started = time.perf_counter()
    assert window.close()
    assert time.perf_counter() - started < 2, "quit waited for the work instead of cancelling"
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert task.token.cancelled
    qtbot.waitUntil(lambda: task.outcome == "cancelled", timeout=5000)


def test_ui_thread_keeps_beating_while_workers_run(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([])
    done: list[int] = []
    with Heartbeat() as heart:
        for _ in range(2):
            window.ctx.tasks.run("Slow work", lambda ctx: _slow(ctx, {}, steps=40), done.append)
        qtbot.waitUntil(lambda: len(done) == 2, timeout=10_000)
    assert heart.beats > 20
    heart.assert_responsive(100, "while workers run")


def test_theme_layout_and_view_survive_a_restart(
        qtbot: QtBot, make_window: Callable[..., MainWindow], qapp: QApplication) -> None:
    window = make_window([])
    assert window.ctx.theme.name == "light"
    window.dark_action.trigger()
    assert window.ctx.theme.name == "dark"
    assert "#13161c" in qapp.styleSheet()
    window.resize(720, 520)
    window.close()
    again = create_window(window.ctx.catalog, qapp, [])
    qtbot.addWidget(again)
    assert again.ctx.theme.name == "dark"
    assert again.size().width() == 720
    again.ctx.theme.apply(qapp, "light")



def test_every_view_toolbar_fits_a_1400_px_window(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    """A toolbar wider than its view hides its last buttons behind a clipped overflow
    arrow (the Fleet view's ten buttons did, at 1400 px): each view's buttons must fit."""
    window = make_window()
    window.resize(1400, 860)
    for index, view in enumerate(window.views):
        window.show_view(index)
        qtbot.waitUntil(view.isVisible)
        hidden = [a.text() for a in view.toolbar.actions()
                  if a.isVisible() and not view.toolbar.widgetForAction(a).isVisible()]
        assert not hidden, f"{view.title}: {hidden} pushed into the overflow"
        assert view.toolbar.sizeHint().width() <= view.toolbar.width(), view.title

def test_about_lists_versions(qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([])
    dialog = window.show_about()
    assert isinstance(dialog, AboutDialog)
    text = dialog.findChild(QLabel, "versions")
    assert text is not None
    qtbot.waitUntil(lambda: "onnxruntime" in text.text(), timeout=10_000)
    for name in ("PySide6", "duckdb", "onnxruntime", "outpost"):
        assert name in text.text()
    dialog.close()


def test_progress_events_are_throttled(qtbot: QtBot, make_window: Callable[..., MainWindow]
                                       ) -> None:
    window = make_window([])
    received: list[object] = []

    def chatty(ctx: TaskContext) -> str:
        for i in range(200_000):
            report(ctx.progress, "tight loop", i, 200_000)
        return threading.current_thread().name

    task = window.ctx.tasks.run("Chatty", chatty)
    task.progressed.connect(received.append)
    qtbot.waitUntil(lambda: task.outcome == "done", timeout=10_000)
    assert 1 <= len(received) < 200


def test_a_long_session_of_signals_cannot_exhaust_true(
        make_window: Callable[..., MainWindow]) -> None:
    """PySide6 6.12's emit() drops a reference to True on CPython 3.11 (see app/qt_compat)."""
    window = make_window([])
    before = sys.getrefcount(True)
    for _ in range(200_000):  # hours of progress ticks; without the pin this aborts
        window.ctx.events.datasets_changed.emit()
    assert sys.getrefcount(True) > PINNED // 2
    drop = before - sys.getrefcount(True)
    if sys.version_info >= (3, 12):  # True is immortal: its count does not move
        assert abs(drop) < 100
    else:  # each emit takes one reference; when PySide stops, app/qt_compat.py can go
        assert abs(drop - 200_000) < 100, f"True lost {drop} references in 200,000 emits"


def test_catalog_held_by_another_process_says_so_and_exits_1(
        outpost_home: Path, monkeypatch: pytest.MonkeyPatch, qapp: QApplication) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom core.catalog import Catalog\n"
         "from core.config import Settings\nc = Catalog.open(Settings.from_env())\n"
         "print('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        shown: list[str] = []
        # The real box is modal (exec); record what it would say instead.
        monkeypatch.setattr(QMessageBox, "critical",
                            staticmethod(lambda parent, title, text: shown.append(text)))
        assert run_gui() == 1
        assert shown and shown[0].startswith("catalog is in use by another Outpost process")
    finally:
        holder.kill()
        holder.communicate()
