"""Compare two dataset versions: rows, schema changes, and which statistics moved."""
from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.context import AppContext
from app.models.datasets import StatChangesTableModel
from app.models.records import sorting_proxy
from core.datasets import Diff, diff_versions


def describe(diff: Diff) -> str:
    lines = [f"<b>{diff.a}</b> → <b>{diff.b}</b>"]
    if diff.same_content:
        lines.append("Same content: the versions are identical.")
    delta = diff.rows[1] - diff.rows[0]
    lines.append(f"Rows: {diff.rows[0]:,} → {diff.rows[1]:,} ({delta:+,})")
    if diff.added:
        lines.append("Added columns: " + ", ".join(f"{c.name} ({c.type})" for c in diff.added))
    if diff.removed:
        lines.append("Removed columns: " + ", ".join(c.name for c in diff.removed))
    if diff.retyped:
        lines.append("Type changes: " + ", ".join(f"{n} {a} → {b}" for n, a, b in diff.retyped))
    if not (diff.added or diff.removed or diff.retyped):
        lines.append("Schema unchanged.")
    lines.append(f"{len(diff.changes)} statistics changed.")
    return "<br>".join(lines)


class DiffDialog(QDialog):
    def __init__(self, ctx: AppContext, refs: list[str], a: str | None, b: str | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.diff: Diff | None = None
        self.setWindowTitle("Compare dataset versions")
        self.resize(760, 520)
        layout = QVBoxLayout(self)
        pick = QHBoxLayout()
        self.a = QComboBox()
        self.a.setObjectName("diffA")
        self.b = QComboBox()
        self.b.setObjectName("diffB")
        for combo, value in ((self.a, a), (self.b, b)):
            combo.addItems(refs)
            if value in refs:
                combo.setCurrentText(value)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setDefault(True)
        self.compare_button.clicked.connect(self.compare)
        pick.addWidget(QLabel("A"))
        pick.addWidget(self.a, 1)
        pick.addWidget(QLabel("B"))
        pick.addWidget(self.b, 1)
        pick.addWidget(self.compare_button)
        layout.addLayout(pick)
        self.summary = QLabel("Choose two versions and compare them.")
        self.summary.setObjectName("diffSummary")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.model = StatChangesTableModel()
        self.table = QTableView()
        self.table.setModel(sorting_proxy(self.model))
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().hide()
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def compare(self) -> None:
        a, b = self.a.currentText(), self.b.currentText()
        self.compare_button.setEnabled(False)
        self.summary.setText("Comparing…")
        self.ctx.tasks.run(
            f"Compare {a} and {b}",
            lambda c: diff_versions(c.catalog, a, b, progress=c.progress, cancel=c.cancel),
            self._compared,
            on_error=self._failed,
        )

    def _compared(self, diff: Diff) -> None:
        self.diff = diff
        self.compare_button.setEnabled(True)
        self.summary.setText(describe(diff))
        self.model.set_records(diff.changes)
        self.table.resizeColumnsToContents()

    def _failed(self, exc: Exception) -> bool:
        self.compare_button.setEnabled(True)
        self.summary.setText("Comparison failed.")
        return False
