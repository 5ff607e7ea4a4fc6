"""Import one file as a dataset version, with the CLI's read options and its row accounting.

The dialog offers what ``outpost dataset import`` does — dataset name, encoding, decimal
mark and bad-line policy for CSV/TSV, the sheet of a workbook (listed from the file) — and
shows only the options that apply to the file. After the import it stays open on the
accounting (lines read, skipped or padded, rows stored); a refusal shows its one line
here and nothing is stored.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDialogButtonBox, QLabel, QLineEdit, QWidget

from app.context import AppContext
from app.dialogs.base import TaskDialog
from core.datasets import (
    ImportResult,
    ReadOptions,
    detect_format,
    import_dataset,
    sheet_names,
)
from core.datasets.names import default_name
from core.datasets.options import BAD_LINES_HINT
from core.errors import OutpostError

DETECT = "detect"
# Offered in the list; the field takes any codec name Python knows (as --encoding does).
ENCODINGS = (DETECT, "utf-8", "cp1252", "latin-1", "utf-16", "utf-16-le", "utf-16-be")
DECIMALS = ((".", ". (point)"), (",", ", (comma: European files, ';' between fields)"))
BAD_LINES = ((None, "refuse the file (name the first bad line)"),
             ("skip", "skip them and count them"),
             ("null-pad", "pad short lines with nulls"))
TEXT_KINDS = ("csv", "tsv")
GUI_HINT = "choose above what to do with such lines, or fix the file"


class ImportDialog(TaskDialog):
    closes_on_success = False  # it stays to show what was read and stored
    imported = Signal(object)  # ImportResult, before the catalog event

    def __init__(self, ctx: AppContext, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(ctx, f"Import {path.name}", "Import", parent)
        self.path = path
        self.result_value: ImportResult | None = None
        self.kind: str | None = None
        self.file = QLabel(str(path))
        self.file.setObjectName("importFile")
        self.file.setWordWrap(True)
        self.name = QLineEdit()
        self.name.setObjectName("importName")
        self.encoding = QComboBox()
        self.encoding.setObjectName("importEncoding")
        self.encoding.setEditable(True)
        self.encoding.addItems(ENCODINGS)
        self.decimal = QComboBox()
        self.decimal.setObjectName("importDecimal")
        for value, text in DECIMALS:
            self.decimal.addItem(text, value)
        self.bad_lines = QComboBox()
        self.bad_lines.setObjectName("importBadLines")
        for policy, text in BAD_LINES:
            self.bad_lines.addItem(text, policy)
        self.sheet = QComboBox()
        self.sheet.setObjectName("importSheet")
        self.summary = QLabel()
        self.summary.setObjectName("importSummary")
        self.summary.setWordWrap(True)
        self.form.addRow("File", self.file)
        self.form.addRow("Dataset name", self.name)
        self.form.addRow("Encoding", self.encoding)
        self.form.addRow("Decimal mark", self.decimal)
        self.form.addRow("Lines with another field count", self.bad_lines)
        self.form.addRow("Sheet", self.sheet)
        self.layout_.insertWidget(1, self.summary)
        for widget in (self.encoding, self.decimal, self.bad_lines, self.sheet):
            signal = (widget.currentTextChanged if widget is self.encoding
                      else widget.currentIndexChanged)
            signal.connect(self._changed)
        self.name.textChanged.connect(self._changed)
        self._show_options()

    # --- what applies to this file ------------------------------------------------------
    def _show_options(self) -> None:
        try:
            self.kind, stem = detect_format(self.path)
        except OutpostError as exc:
            self.error.setText(str(exc))
            self.ok_button.setEnabled(False)
            for widget in (self.name, self.encoding, self.decimal, self.bad_lines, self.sheet):
                self.form.setRowVisible(widget, False)
            return
        self.name.setText(default_name(stem))
        text = self.kind in TEXT_KINDS
        for widget in (self.encoding, self.decimal, self.bad_lines):
            self.form.setRowVisible(widget, text)
        self.form.setRowVisible(self.sheet, self.kind == "xlsx")
        if self.kind == "xlsx":
            self.ok_button.setEnabled(False)  # until the sheets are listed
            self.sheet.addItem("reading the workbook…")
            self.sheet.setEnabled(False)
            self.ctx.tasks.run(f"List the sheets of {self.path.name}",
                               lambda c: sheet_names(self.path), self._sheets_listed,
                               on_error=self._sheets_failed, visible=False)

    def _sheets_listed(self, names: list[str]) -> None:
        self.sheet.clear()
        self.sheet.addItems(names)
        self.sheet.setEnabled(bool(names))
        self.ok_button.setEnabled(bool(names))
        if not names:
            self.error.setText(f"{self.path.name} has no sheets")

    def _sheets_failed(self, exc: Exception) -> bool:
        self.sheet.clear()
        handled = self._failed(exc)
        self.ok_button.setEnabled(False)  # a workbook that cannot be read has nothing to import
        return handled

    # --- import ---------------------------------------------------------------------------
    def options(self) -> ReadOptions:
        """The form as the CLI's options (raises InvalidInput for an unknown encoding)."""
        if self.kind == "xlsx":
            return ReadOptions(sheet=self.sheet.currentText() or None)
        if self.kind not in TEXT_KINDS:
            return ReadOptions()
        encoding = self.encoding.currentText().strip()
        return ReadOptions(encoding=None if encoding in ("", DETECT) else encoding,
                           decimal=self.decimal.currentData(),
                           bad_lines=self.bad_lines.currentData())

    def submit(self) -> None:
        if self.result_value is not None:
            self.accept()  # the button reads "Close" once the import is done
            return
        try:
            options = self.options()
        except OutpostError as exc:
            self.error.setText(str(exc))
            return
        name = self.name.text().strip() or None
        path = self.path
        self.summary.setText("")
        self.run(f"Import {path.name}",
                 lambda c: import_dataset(c.catalog, path, name, options=options,
                                          progress=c.progress, cancel=c.cancel))

    def succeeded(self, result: ImportResult) -> None:
        what = "a new version" if result.new else "already there as version"
        counts = result.lines.describe() if result.lines else f"{result.rows:,} rows stored"
        self.summary.setText(f"Imported {result.name}: {what} {result.version[:12]}. {counts}.")
        self.ok_button.setText("Close")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).hide()  # nothing to cancel
        for widget in (self.name, self.encoding, self.decimal, self.bad_lines, self.sheet):
            widget.setEnabled(False)
        self.imported.emit(result)
        self.ctx.events.datasets_changed.emit()

    def _failed(self, exc: Exception) -> bool:
        handled = super()._failed(exc)
        # The refusal tells the CLI user which flag to pass; here the choice is in the form.
        self.error.setText(self.error.text().replace(BAD_LINES_HINT, GUI_HINT))
        return handled

    def _changed(self) -> None:
        """Editing the form after a refusal: the old message no longer applies."""
        if self.result_value is None:
            self.error.setText("")
