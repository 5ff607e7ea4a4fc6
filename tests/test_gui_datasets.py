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

from app.dialogs.importing import ImportDialog
from app.models.preview import PLACEHOLDER
from app.views.datasets import DatasetsView
from app.window import MainWindow
from core.catalog import Catalog
from core.datasets import import_frame, list_datasets, read_page
from core.samples import SAMPLES
from tests.support.gui import (  # noqa: F401 (fixtures)
    Heartbeat,
    catalog_fixture,
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


def _dialog(qtbot: QtBot, view: DatasetsView, name: str) -> ImportDialog:
    """The import dialog open now, once it is for ``name`` and ready to import."""
    qtbot.waitUntil(lambda: view.import_dialog is not None
                    and view.import_dialog.path.name == name
                    and view.import_dialog.ok_button.isEnabled(), timeout=10_000)
    assert view.import_dialog is not None and view.import_dialog.isVisible()
    return view.import_dialog


def _import(qtbot: QtBot, dialog: ImportDialog, *, close: bool = True) -> str:
    """Click Import, wait for the outcome; the accounting line (or the refusal)."""
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: bool(dialog.summary.text() or dialog.error.text()), timeout=30_000)
    text = dialog.summary.text() or dialog.error.text()
    if close and dialog.summary.text():
        assert dialog.ok_button.text() == "Close"
        dialog.ok_button.click()
        assert not dialog.isVisible()  # closed (and deleted once the loop runs)
    return text


def _drop(view: DatasetsView, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPointF(view.rect().center()), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(view.rect().center()), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, drop)


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
    dialog = _dialog(qtbot, view, "readings.csv")
    assert dialog.name.text() == "readings"
    assert "5,000 lines read, 5,000 rows stored" in _import(qtbot, dialog)
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
    _drop(view, [path])
    dialog = _dialog(qtbot, view, "dropped.csv")
    assert dialog.name.text() == "dropped" and dialog.file.text() == str(path)
    _import(qtbot, dialog)
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
    _drop(view, [tmp_path / n for n in ("sheet.xlsx", "win.csv", "wide.csv")])
    # One dialog per file, in turn; detection needs no choice here.
    book_dialog = _dialog(qtbot, view, "sheet.xlsx")
    assert [book_dialog.sheet.itemText(i) for i in range(book_dialog.sheet.count())] == [
        "Sheet"]
    assert not book_dialog.encoding.isVisibleTo(book_dialog)
    assert "40 lines read, 40 rows stored" in _import(qtbot, book_dialog)
    for name in ("win.csv", "wide.csv"):
        dialog = _dialog(qtbot, view, name)
        assert not dialog.sheet.isVisibleTo(dialog) and dialog.encoding.isVisibleTo(dialog)
        _import(qtbot, dialog)
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
    view.open_import([bad, _csv(tmp_path / "good.csv", 10)])
    dialog = _dialog(qtbot, view, "broken.csv")
    message = _import(qtbot, dialog)
    assert "broken.csv" in message and "\n" not in message and not dialog.summary.text()
    assert dialog.isVisible() and not error_dialogs(window)
    dialog.reject()
    _import(qtbot, _dialog(qtbot, view, "good.csv"))
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
        view.open_import([path])
        _import(qtbot, _dialog(qtbot, view, "large.csv"))
        _wait_selected(qtbot, view, "large")
        qtbot.waitUntil(lambda: view.preview.model.is_loaded(0), timeout=5000)
    heart.assert_responsive(100, "during import")

    # The same file under another name, cancelled from its status-bar button mid-way.
    again = tmp_path / "again.csv"
    again.write_bytes(path.read_bytes())
    view.open_import([again])
    dialog = _dialog(qtbot, view, "again.csv")
    dialog.ok_button.click()
    item = next(iter(window.task_bar.items.values()))
    qtbot.waitUntil(lambda: item.bar.maximum() == 1000 or item.task.last is not None,
                    timeout=5000)
    item.cancel_button.click()
    qtbot.waitUntil(lambda: item.task.outcome is not None, timeout=10_000)
    assert item.task.outcome == "cancelled"
    assert "cancelled" in window.statusBar().currentMessage()
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]
    assert "again" not in {d.name for d in list_datasets(catalog)}
    qtbot.waitUntil(dialog.ok_button.isEnabled, timeout=5000)  # it may be tried again
    dialog.reject()


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


def test_ragged_csv_is_refused_by_line_then_imported_skipping_with_the_counts(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n7,8,9,10\n")
    window = make_window([DatasetsView])
    view = _view(window)
    view.open_import([path])
    dialog = _dialog(qtbot, view, "ragged.csv")
    assert [dialog.bad_lines.itemData(i) for i in range(dialog.bad_lines.count())] == [
        None, "skip", "null-pad"]
    refusal = _import(qtbot, dialog)
    assert "line 3 has 2 fields, expected 3; choose above" in refusal and "\n" not in refusal
    assert dialog.isVisible() and list_datasets(catalog) == []  # nothing stored
    dialog.bad_lines.setCurrentIndex(dialog.bad_lines.findData("skip"))
    assert dialog.error.text() == ""  # the refusal went with the change
    counts = _import(qtbot, dialog, close=False)
    assert "4 lines read, 2 skipped, 2 rows stored" in counts
    assert "4 lines read, 2 skipped, 2 rows stored" in window.statusBar().currentMessage()
    dialog.ok_button.click()
    _wait_selected(qtbot, view, "ragged")
    assert view.selected is not None and view.selected.rows == 2
    assert view.selected.source["lines"] == {"read": 4, "stored": 2, "skipped": 2, "padded": 0}


def test_european_csv_with_semicolons_decimal_commas_and_cp1252(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    path = tmp_path / "messwerte.csv"
    path.write_bytes("Ort;Betrag;Menge\nMünchen;1,50;3\nZürich;2,25;4\nKöln;10,75;5\n"
                     .encode("cp1252"))
    window = make_window([DatasetsView])
    view = _view(window)
    view.open_import([path])
    dialog = _dialog(qtbot, view, "messwerte.csv")
    dialog.name.setText("eu")
    dialog.encoding.setCurrentText("cp1252")
    dialog.decimal.setCurrentIndex(dialog.decimal.findData(","))
    assert "3 lines read, 3 rows stored" in _import(qtbot, dialog)
    _wait_selected(qtbot, view, "eu")
    dv = view.selected
    assert dv is not None and [(c.name, c.type) for c in dv.columns] == [
        ("Ort", "VARCHAR"), ("Betrag", "DOUBLE"), ("Menge", "BIGINT")]
    assert read_page(catalog, dv, 0, 3) == [("München", 1.5, 3), ("Zürich", 2.25, 4),
                                            ("Köln", 10.75, 5)]
    assert dv.source["decimal"] == "," and dv.source["encoding"] == "cp1252"


def test_workbook_lists_its_sheets_and_imports_the_one_chosen(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Summary"
    first.append(["note"])
    first.append(["see the readings"])
    second = book.create_sheet("Readings 2026")
    second.append(["sensor", "value"])
    for i in range(12):
        second.append([f"s{i}", i / 4])
    book.save(tmp_path / "plant.xlsx")
    window = make_window([DatasetsView])
    view = _view(window)
    _drop(view, [tmp_path / "plant.xlsx"])
    dialog = _dialog(qtbot, view, "plant.xlsx")
    assert [dialog.sheet.itemText(i) for i in range(dialog.sheet.count())] == [
        "Summary", "Readings 2026"]
    assert not dialog.bad_lines.isVisibleTo(dialog) and not dialog.decimal.isVisibleTo(dialog)
    dialog.sheet.setCurrentText("Readings 2026")
    assert "12 lines read, 12 rows stored" in _import(qtbot, dialog)
    _wait_selected(qtbot, view, "plant")
    dv = view.selected
    assert dv is not None and dv.rows == 12 and dv.source["sheet"] == "Readings 2026"
    assert [c.name for c in dv.columns] == ["sensor", "value"]
