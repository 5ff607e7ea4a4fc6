"""Derive a new dataset version with SQL over a parent version; errors show under the editor."""
from __future__ import annotations

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.context import AppContext
from core.datasets import ImportResult, derive_dataset
from core.errors import InvalidInput, NotFound


class DeriveDialog(QDialog):
    def __init__(self, ctx: AppContext, refs: list[str], current: str | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.result_value: ImportResult | None = None
        self.setWindowTitle("Derive a dataset")
        self.resize(640, 420)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.source = QComboBox()
        self.source.setObjectName("deriveFrom")
        self.source.addItems(refs)
        if current in refs:
            self.source.setCurrentText(current)
        self.name = QLineEdit()
        self.name.setObjectName("deriveName")
        base = (current or "data").split("@")[0]
        self.name.setText(f"{base}_derived")
        form.addRow("From", self.source)
        form.addRow("New dataset", self.name)
        layout.addLayout(form)
        layout.addWidget(QLabel("SQL over the parent version, which is the table <b>data</b>:"))
        self.sql = QPlainTextEdit("SELECT *\nFROM data\n")
        self.sql.setObjectName("deriveSql")
        self.sql.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.sql, 1)
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.derive_button = self.buttons.addButton("Derive",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.derive_button.setDefault(True)
        self.buttons.accepted.connect(self.derive)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.sql.textChanged.connect(lambda: self.error.setText(""))

    def derive(self) -> None:
        name, ref, sql = self.name.text().strip(), self.source.currentText(), self.sql.toPlainText()
        self.error.setText("")
        self.derive_button.setEnabled(False)
        self.ctx.tasks.run(
            f"Derive {name}",
            lambda c: derive_dataset(c.catalog, name, ref, sql, progress=c.progress,
                                     cancel=c.cancel),
            self._derived,
            on_error=self._failed,
        )

    def _derived(self, result: ImportResult) -> None:
        self.result_value = result
        self.derive_button.setEnabled(True)
        self.ctx.events.datasets_changed.emit()
        self.accept()

    def _failed(self, exc: Exception) -> bool:
        """Bad SQL or a bad name is the user's to fix here: show it inline, keep the dialog."""
        self.derive_button.setEnabled(True)
        if isinstance(exc, InvalidInput | NotFound):
            self.error.setText(str(exc))
            return True
        return False
