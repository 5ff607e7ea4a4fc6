"""A version's profile: one row of statistics per column, and the selected column's histogram."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.models.datasets import ColumnProfilesTableModel
from app.models.records import sorting_proxy
from app.theme import Theme
from app.widgets.plots import HistogramPlot
from core.datasets import ColumnProfile, Profile


class ProfilePanel(QWidget):
    def __init__(self, theme: Theme) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        self.summary = QLabel("Select a dataset version to profile it.")
        self.summary.setObjectName("muted")
        self.model = ColumnProfilesTableModel()
        self.proxy = sorting_proxy(self.model)
        self.table = QTableView()
        self.table.setObjectName("profileTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.selectionModel().currentRowChanged.connect(self._selected)
        self.histogram = HistogramPlot(theme)
        self.histogram.setObjectName("profileHistogram")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.histogram)
        split.setSizes([300, 220])
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        self.profile: Profile | None = None

    def show_profile(self, profile: Profile) -> None:
        self.profile = profile
        self.summary.setText(f"{profile.dataset}@{profile.version[:12]}: {profile.rows:,} rows, "
                             f"{len(profile.columns)} columns. Select a column for its histogram.")
        self.model.set_records(profile.columns)
        if profile.columns:
            self.table.selectRow(0)

    def clear(self, text: str) -> None:
        self.profile = None
        self.summary.setText(text)
        self.model.set_records([])
        self.histogram.reset("")

    def retheme(self) -> None:
        self.histogram.retheme()
        index = self.table.currentIndex()
        if index.isValid():
            self._selected(index)

    def _selected(self, index: object) -> None:
        row = self.proxy.mapToSource(self.table.currentIndex()).row()
        if 0 <= row < len(self.model.records):
            self.show_column(self.model.record(row))

    def show_column(self, column: ColumnProfile) -> None:
        if column.histogram:
            edges = [low for low, _, _ in column.histogram] + [column.histogram[-1][1]]
            counts = [n for _, _, n in column.histogram]
            if edges[0] == edges[-1]:  # one value only: give the bar some width to be seen
                edges = [edges[0] - 0.5, edges[0] + 0.5]
            self.histogram.show_bins(edges, counts, f"{column.name}: distribution")
        elif column.top:
            self.histogram.show_categories([str(v) for v, _ in column.top],
                                           [n for _, n in column.top],
                                           f"{column.name}: most frequent values")
        else:
            self.histogram.reset(f"{column.name}: no histogram for {column.type}")
