"""Live accuracy beside the drift heatmap: per agent x model version, labelled and
unlabelled answers, accuracy (or MAE/RMSE) against holdout, and the labels import."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.models.records import Column, RecordTableModel, number
from app.views.datasets import record_table

if TYPE_CHECKING:
    from core.accuracy import (
        AccuracyReport,
        AgentAccuracy,  # noqa: F401 -- named in a string type argument
    )

ALERT_COLOUR = "#d9534f"


class AccuracyTableModel(RecordTableModel["AgentAccuracy"]):
    def __init__(self) -> None:
        super().__init__([
            Column("Agent", lambda e: e.agent),
            Column("Version", lambda e: e.version, align_right=True),
            Column("Labelled", lambda e: e.labelled, number, align_right=True),
            Column("Unlabelled", lambda e: e.unlabelled, number, align_right=True),
            Column("Live", lambda e: e.accuracy if e.correct is not None else e.rmse,
                   lambda v: "" if v is None else f"{v:.3f}", align_right=True,
                   colour=lambda e: ALERT_COLOUR if e.alert else None,
                   tip=lambda e: "accuracy" if e.correct is not None else "RMSE"),
            Column("Holdout", lambda e: e.holdout,
                   lambda v: "" if v is None else f"{v:.3f}", align_right=True),
            Column("MAE", lambda e: e.mae, number, align_right=True),
        ])


class AccuracyPanel(QWidget):
    import_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.title = QLabel("Live accuracy")
        self.title.setObjectName("sectionTitle")
        self.note = QLabel("No labels yet: import a CSV of id,label.")
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        self.import_button = QPushButton("Import labels…")
        self.import_button.setObjectName("importLabels")
        self.import_button.clicked.connect(self.import_requested.emit)
        self.model = AccuracyTableModel()
        self.table = record_table(self.model, "accuracyTable")
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.import_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)

    def show_report(self, report: AccuracyReport | None) -> None:
        if report is None:
            self.model.set_records([])
            self.note.setText("No predictions with ids from this model yet.")
            return
        self.model.set_records(report.agents)
        labelled = sum(e.labelled for e in report.agents)
        unlabelled = sum(e.unlabelled for e in report.agents)
        text = f"{labelled:,} labelled, {unlabelled:,} unlabelled answers"
        if report.orphans:
            text += f"; {report.orphans:,} labels wait for their prediction"
        if report.alerts:
            text += " — " + "; ".join(report.alerts)
        self.note.setText(text)
