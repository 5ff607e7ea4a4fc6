"""The Datasets view, driven through its real widgets over a real catalog."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog
from pytestqt.qtbot import QtBot

from app.models.preview import PLACEHOLDER
from app.views.datasets import DatasetsView
from app.window import MainWindow
from core.catalog import Catalog
from core.datasets import import_frame, list_datasets
from core.samples import SAMPLES
from tests.support.gui import (  # noqa: F401 (fixtures)
    Heartbeat,
    catalog_fixture,
    dismiss_errors,
    error_dialogs,
    make_window_fixture,
)


def _view(window: MainWindow) -> DatasetsView:
    view = window.view(DatasetsView)
    assert isinstance(view, DatasetsView)
    return view


def _names(view: DatasetsView) -> list[str]:
    return [d.name for d in view.datasets.records]


def _csv(path: Path, rows: int) -> Path:
    duckdb.sql(f"COPY (SELECT range AS id, range % 7 AS bucket, 'site_' || (range % 5) AS site,"
               f" random() AS value FROM range({rows})) TO '{path}' (HEADER)")
    return path


def _wait_selected(qtbot: QtBot, view: DatasetsView, name: str) -> None:
    qtbot.waitUntil(lambda: view.selected is not None and view.selected.dataset == name,
                    timeout=10_000)


def test_first_start_loads_samples_and_says_so(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([DatasetsView])
    window.offer_samples()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    assert "sample datasets" in window.banner.label.text()
    view = _view(window)
    qtbot.waitUntil(lambda: len(_names(view)) == len(SAMPLES), timeout=10_000)
    assert set(_names(view)) == {s.name for s in SAMPLES}
    # Offered once per catalog: a second start does not reload or repeat the message.
    window.banner.hide()
    window.offer_samples()
    qtbot.wait(200)
    assert not window.banner.isVisible()


def test_import_by_dialog_previews_lazily_and_shows_profile_and_lineage(
        qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = _csv(tmp_path / "readings.csv", 5000)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(path)], "")))
    window = make_window([DatasetsView])
    view = _view(window)
    view.import_action.trigger()
    _wait_selected(qtbot, view, "readings")
    assert "Imported readings: 5,000 rows" in window.statusBar().currentMessage()
    model = view.preview.model
    assert model.rowCount() == 5000 and model.columnCount() == 4
    qtbot.waitUntil(lambda: model.data(model.index(0, 0)) == "0", timeout=5000)
    # Far rows load on demand when scrolled to, not before.
    assert not model.is_loaded(4999)
    view.preview.table.scrollToBottom()
    qtbot.waitUntil(lambda: model.data(model.index(4999, 0)) == "4999", timeout=5000)

    view.tabs.setCurrentWidget(view.profile)
    qtbot.waitUntil(lambda: view.profile.profile is not None, timeout=10_000)
    assert [c.name for c in view.profile.model.records] == ["id", "bucket", "site", "value"]
    assert view.profile.histogram.listDataItems() or view.profile.histogram.getPlotItem().items

    view.tabs.setCurrentWidget(view.lineage)
    qtbot.waitUntil(lambda: view.lineage.topLevelItemCount() == 1, timeout=5000)
    assert "readings.csv" in view.lineage.topLevelItem(0).text(2)


def test_drop_a_file_imports_it(qtbot: QtBot, make_window: Callable[..., MainWindow],
                                tmp_path: Path) -> None:
    path = _csv(tmp_path / "dropped.csv", 100)
    window = make_window([DatasetsView])
    view = _view(window)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPointF(view.rect().center()), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(view.rect().center()), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, drop)
    _wait_selected(qtbot, view, "dropped")
    assert view.selected is not None and view.selected.rows == 100


def test_drop_a_workbook_and_non_utf8_csvs_imports_them(
        qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["city", "amount"])
    for i in range(40):
        sheet.append([f"city{i}", i * 1.5])
    book.save(tmp_path / "sheet.xlsx")
    (tmp_path / "win.csv").write_bytes("city,n\nMünchen,1\nZürich,2\n".encode("cp1252"))
    (tmp_path / "wide.csv").write_bytes("city,n\nÅre,1\n".encode("utf-16"))
    window = make_window([DatasetsView])
    view = _view(window)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / n)) for n in ("sheet.xlsx", "win.csv",
                                                                  "wide.csv")])
    enter = QDragEnterEvent(QPointF(view.rect().center()), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(view.rect().center()), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, drop)
    qtbot.waitUntil(lambda: {"sheet", "win", "wide"} <= set(_names(view)), timeout=20_000)
    rows = {d.name: d.latest.rows for d in view.datasets.records}
    assert (rows["sheet"], rows["win"], rows["wide"]) == (40, 2, 1)
    assert not error_dialogs(window)


def test_bad_file_shows_its_message_and_the_window_stays_usable(
        qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\x00\xff\xfe binary \x00 garbage" * 50)
    window = make_window([DatasetsView])
    view = _view(window)
    view.import_files([bad])
    qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=10_000)
    message = error_dialogs(window)[0].text()
    assert "broken.csv" in message and "\n" not in message
    assert "Traceback" in error_dialogs(window)[0].detailedText()
    dismiss_errors(window)
    view.import_files([_csv(tmp_path / "good.csv", 10)])
    _wait_selected(qtbot, view, "good")


def test_derive_shows_sql_errors_inline_then_records_lineage(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog) -> None:
    import_frame(catalog, "base", pd.DataFrame({"a": [1, 2, 3, 4], "b": ["x", "y", "x", "y"]}),
                 {"test": True})
    window = make_window([DatasetsView])
    view = _view(window)
    _wait_selected(qtbot, view, "base")
    dialog = view.open_derive()
    dialog.name.setText("only_x")
    dialog.sql.setPlainText("SELECT a, nope FROM data")
    dialog.derive_button.click()
    qtbot.waitUntil(lambda: "nope" in dialog.error.text(), timeout=5000)
    assert dialog.isVisible() and not error_dialogs(window)
    dialog.sql.setPlainText("SELECT * FROM data WHERE b = 'x'")
    dialog.derive_button.click()
    qtbot.waitUntil(lambda: not dialog.isVisible() or dialog.error.text() not in ("", "nope"),
                    timeout=10_000)
    assert not dialog.isVisible(), dialog.error.text()
    _wait_selected(qtbot, view, "only_x")
    assert view.selected is not None and view.selected.rows == 2
    view.tabs.setCurrentWidget(view.lineage)
    qtbot.waitUntil(lambda: view.lineage.topLevelItemCount() == 1
                    and view.lineage.topLevelItem(0).childCount() == 1, timeout=5000)
    assert view.lineage.topLevelItem(0).child(0).text(0).startswith("base@")

    diff = view.open_diff()
    assert diff.a.currentText().startswith("base@") and diff.b.currentText().startswith("only_x@")
    diff.compare_button.click()
    qtbot.waitUntil(lambda: diff.diff is not None, timeout=10_000)
    assert "4 → 2" in diff.summary.text()
    diff.close()


def test_large_import_keeps_the_ui_beating_and_can_be_cancelled(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    path = _csv(tmp_path / "large.csv", 1_000_000)
    window = make_window([DatasetsView])
    view = _view(window)
    with Heartbeat() as heart:
        view.import_files([path])
        _wait_selected(qtbot, view, "large")
        qtbot.waitUntil(lambda: view.preview.model.is_loaded(0), timeout=5000)
    heart.assert_responsive(100, "during import")

    # The same file under another name, cancelled from its status-bar button mid-way.
    again = tmp_path / "again.csv"
    again.write_bytes(path.read_bytes())
    view.import_files([again])
    item = next(iter(window.task_bar.items.values()))
    qtbot.waitUntil(lambda: item.bar.maximum() == 1000 or item.task.last is not None,
                    timeout=5000)
    item.cancel_button.click()
    qtbot.waitUntil(lambda: item.task.outcome is not None, timeout=10_000)
    assert item.task.outcome == "cancelled"
    assert "cancelled" in window.statusBar().currentMessage()
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]
    assert "again" not in {d.name for d in list_datasets(catalog)}


def test_preview_of_millions_of_rows_fetches_only_what_is_seen(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    duckdb.sql(f"COPY (SELECT range AS id, range % 13 AS k FROM range(2000000)) TO '{path}'")
    from core.datasets import import_dataset

    import_dataset(catalog, path)
    window = make_window([DatasetsView])
    view = _view(window)
    _wait_selected(qtbot, view, "wide")
    model, table = view.preview.model, view.preview.table
    assert model.rowCount() == 2_000_000
    bar = table.verticalScrollBar()
    with Heartbeat() as heart:
        for step in range(40):
            bar.setValue(bar.maximum() * step // 39)
            qtbot.wait(15)
        row = table.rowAt(table.viewport().height() // 2)
        qtbot.waitUntil(lambda: model.data(model.index(row, 0)) == str(row), timeout=5000)
    assert row > 1_900_000
    assert len(model.pages) <= model.max_pages
    # Scrolling paints on the UI thread, so this bound is looser than the import's: it
    # catches a page read done on the UI thread (seconds at 2 M rows), not painting.
    heart.assert_responsive(300, "while scrolling")
    assert model.data(model.index(1_000_000, 0)) in (PLACEHOLDER, "1000000")
