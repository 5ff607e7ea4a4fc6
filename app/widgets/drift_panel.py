"""The drift heatmap (features × windows, coloured by PSI) and, for a clicked cell, what
the feature's drift figures were in that window."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from app.monitoring_data import DriftGrid, drift_grid, window_label
from app.theme import Theme
from app.widgets.plots import Heatmap, HistogramPlot
from edge_agent.contract.records import PREDICTION_FEATURE

if TYPE_CHECKING:
    from core.drift import FeatureDrift, Thresholds
    from core.feature_distribution import FeatureDistribution


def feature_label(feature: str) -> str:
    return "(prediction)" if feature == PREDICTION_FEATURE else feature


class DriftPanel(QWidget):
    """Emits ``cell_selected`` with the clicked cell; the view fetches the distribution."""

    cell_selected = Signal(object)  # FeatureDrift

    def __init__(self, theme: Theme) -> None:
        super().__init__()
        self.theme = theme
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.heatmap = Heatmap(theme, "Drift: PSI per feature and window")
        self.heatmap.setObjectName("driftHeatmap")
        self.heatmap.cell_clicked.connect(self.select_cell)
        self.note = QLabel()
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        self.cell = QLabel("Click a cell for the feature's distribution in that window.")
        self.cell.setObjectName("driftCell")
        self.cell.setWordWrap(True)
        self.distribution = HistogramPlot(theme, "Live vs baseline")
        self.distribution.setObjectName("driftDistribution")
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(6, 0, 0, 0)
        side_layout.addWidget(self.cell)
        side_layout.addWidget(self.distribution, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.heatmap)
        split.addWidget(side)
        split.setSizes([640, 420])
        layout.addWidget(self.note)
        layout.addWidget(split, 1)
        self.grid = drift_grid([])
        self.features: list[str] = []
        self.windows: list[float | None] = []
        self.cells: dict[tuple[int, int], FeatureDrift] = {}
        self.psi_warn, self.psi_alert = 0.1, 0.25  # core.drift.Thresholds' defaults
        self.selected: FeatureDrift | None = None

    def show_matrix(self, rows: list[FeatureDrift], thresholds: Thresholds | None,
                    note: str | None = None) -> None:
        self.show_grid(drift_grid(rows), thresholds, note)

    def show_grid(self, grid: DriftGrid, thresholds: Thresholds | None,
                  note: str | None = None) -> None:
        """The heatmap of a grid laid out on a worker (``app.monitoring_data.drift_grid``)."""
        if thresholds is not None:
            self.psi_warn, self.psi_alert = thresholds.psi_warn, thresholds.psi_alert
        self.note.setText(note or "")
        self.grid = grid
        self.features, self.windows, self.cells = grid.features, grid.windows, grid.cells
        top = max(self.psi_alert * 2, 0.5)
        warn, alert = self.psi_warn / top, self.psi_alert / top
        c = self.theme.colour
        # One calm colour for everything below warn; amber to red from warn to alert.
        colours = [c("ok_soft"), c("ok_soft"), c("warn"), c("bad"), c("bad")]
        labels = [feature_label(f) for f in self.features]
        # The colour saturates at `top` (the image's levels); the numbers stay the real PSI.
        self.heatmap.show_matrix(grid.psi, labels, grid.window_labels, colours, (0.0, top),
                                 "Drift: PSI per feature and window", annotate=True,
                                 positions=[0.0, warn * 0.999, warn, alert, 1.0])

    def select_cell(self, row: int, column: int) -> None:
        r = self.cells.get((row, column))
        if r is None:
            return
        test = (f"KS {r.ks:.3f}" if r.ks is not None else
                f"χ² p-value {r.chi2_p:.3g}" if r.chi2_p is not None else "")
        self.cell.setText(
            f"<b>{feature_label(r.feature)}</b> ({r.kind})<br>"
            f"window {window_label(r.window_start)}<br>"
            f"PSI <b>{r.psi:.3f}</b> — {r.status} (warn ≥ {self.psi_warn}, "
            f"alert ≥ {self.psi_alert})<br>{test}<br>{r.rows:,} live values")
        self.selected = r
        self.distribution.reset(f"{feature_label(r.feature)}: loading…")
        self.cell_selected.emit(r)

    def show_distribution(self, dist: FeatureDistribution) -> None:
        """Shares per baseline bin: baseline in grey behind, live in colour in front."""
        if self.selected is None or self.selected.feature != dist.feature:
            return
        self.distribution.show_categories(
            dist.labels, dist.shares(dist.live),
            f"{feature_label(dist.feature)}: live (colour) vs baseline (grey), share per bin",
            baseline=dist.shares(dist.baseline), max_labels=8)
        if dist.edges:  # numeric bins: the cut points under the gaps between the bars
            step = max(1, len(dist.edges) // 6)
            self.distribution.getAxis("bottom").setTicks([[
                (i + 0.5, f"{edge:.3g}") for i, edge in enumerate(dist.edges) if i % step == 0]])

    def retheme(self) -> None:
        self.heatmap.retheme()
        self.distribution.retheme()
        if self.grid.features:
            self.show_grid(self.grid, None, self.note.text() or None)
