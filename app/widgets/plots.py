"""Plots on pyqtgraph: histograms, bar charts, heatmaps, scatter and time series.

Each widget is a thin PlotWidget subclass told its data by a view, coloured by the theme.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFont

from app.theme import Theme


class Plot(pg.PlotWidget):
    """A PlotWidget that follows the theme and draws no frame or menu clutter."""

    def __init__(self, theme: Theme, title: str | None = None) -> None:
        super().__init__()
        self.theme = theme
        self.setMenuEnabled(False)
        self.getPlotItem().hideButtons()
        # Plain numbers on the axes: an error rate reads 0.02, not "20 (x0.001)".
        self.getAxis("left").enableAutoSIPrefix(False)
        self.setMinimumHeight(160)
        self._title = title
        self.retheme()

    def retheme(self) -> None:
        self.setBackground(self.theme.colour("plot_background"))
        fg = self.theme.colour("plot_foreground")
        for name in ("left", "bottom"):
            axis = self.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
        if self._title:
            self.setTitle(self._title, color=fg, size="10pt")

    def reset(self, title: str | None = None) -> None:
        self.clear()
        if title is not None:
            self._title = title
            self.retheme()

    def set_ticks(self, axis: str, labels: Sequence[str], max_shown: int = 30,
                  offset: float = 0.0, width: int = 18) -> None:
        """At most about ``max_shown`` labels (every k-th): an axis drawing a label per item
        of 1,000 costs a paint hundreds of milliseconds and shows nothing readable."""
        step = max(1, len(labels) // max_shown)
        ticks = [(i + offset, str(label)[:width]) for i, label in enumerate(labels)
                 if i % step == 0]
        self.getAxis(axis).setTicks([ticks])


class HistogramPlot(Plot):
    """Bars over numeric bin edges, or one bar per category."""

    def show_bins(self, edges: Sequence[float], counts: Sequence[float], label: str = "",
                  baseline: Sequence[float] | None = None) -> None:
        self.reset(label)
        self.getAxis("bottom").setTicks(None)
        edges_a = np.asarray(edges, dtype=float)
        counts_a = np.asarray(counts, dtype=float)
        if len(edges_a) != len(counts_a) + 1 or not len(counts_a):
            return
        widths = np.diff(edges_a)
        if baseline is not None:
            self.addItem(pg.BarGraphItem(x0=edges_a[:-1], width=widths, height=baseline,
                                         brush=QColor(self.theme.series(7)).lighter(130),
                                         pen=None))
        brush = QColor(self.theme.series(0))
        if baseline is not None:
            brush.setAlpha(170)
        self.addItem(pg.BarGraphItem(x0=edges_a[:-1], width=widths, height=counts_a, brush=brush,
                                     pen=pg.mkPen(self.theme.colour("plot_background"))))

    def show_categories(self, labels: Sequence[str], counts: Sequence[float], label: str = "",
                        baseline: Sequence[float] | None = None, max_labels: int = 30) -> None:
        self.reset(label)
        xs = np.arange(len(labels), dtype=float)
        if baseline is not None:
            self.addItem(pg.BarGraphItem(x=xs - 0.2, width=0.4, height=baseline,
                                         brush=self.theme.series(7), pen=None))
            self.addItem(pg.BarGraphItem(x=xs + 0.2, width=0.4, height=counts,
                                         brush=self.theme.series(0), pen=None))
        else:
            self.addItem(pg.BarGraphItem(x=xs, width=0.7, height=counts,
                                         brush=self.theme.series(0), pen=None))
        self.set_ticks("bottom", labels, max_labels)


class BarChart(Plot):
    """Horizontal bars (feature importance) or grouped vertical bars (run comparison)."""

    def show_ranked(self, labels: Sequence[str], values: Sequence[float], title: str = "",
                    limit: int = 20) -> None:
        self.reset(title)
        pairs = sorted(zip(labels, values, strict=True), key=lambda p: abs(p[1]))[-limit:]
        ys = np.arange(len(pairs), dtype=float)
        self.addItem(pg.BarGraphItem(x0=0, y=ys, height=0.7, width=[p[1] for p in pairs],
                                     brush=self.theme.series(0), pen=None))
        self.getAxis("left").setTicks([[(i, p[0][:22]) for i, p in enumerate(pairs)]])
        self.getAxis("bottom").setTicks(None)

    def show_grouped(self, groups: Sequence[str], series: Mapping[str, Sequence[float]],
                     title: str = "") -> None:
        """One group of bars per label in ``groups``, one colour per series (a run)."""
        self.reset(title)
        self.getAxis("left").setTicks(None)
        n = max(1, len(series))
        width = 0.8 / n
        legend = self.addLegend(offset=(-10, 10))
        legend.setLabelTextColor(self.theme.colour("plot_foreground"))
        for k, (name, values) in enumerate(series.items()):
            xs = np.arange(len(groups), dtype=float) - 0.4 + width * (k + 0.5)
            item = pg.BarGraphItem(x=xs, width=width * 0.9, height=values,
                                   brush=self.theme.series(k), pen=None, name=name)
            self.addItem(item)
        self.set_ticks("bottom", groups)
        top = max((max(v, default=0.0) for v in series.values()), default=1.0)
        # Headroom above the tallest bar so the legend never sits on the bars.
        self.setYRange(min(0.0, *(min(v, default=0.0) for v in series.values())),
                       top * (1.1 + 0.08 * len(series)), padding=0)


class ScatterPlot(Plot):
    def show_points(self, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray,
                    title: str = "",
                    x_label: str = "", y_label: str = "", zero_line: bool = False) -> None:
        self.reset(title)
        self.getAxis("bottom").setTicks(None)
        self.getAxis("left").setTicks(None)
        colour = QColor(self.theme.series(0))
        colour.setAlpha(140)
        self.addItem(pg.ScatterPlotItem(x=np.asarray(xs, float), y=np.asarray(ys, float), size=5,
                                        brush=colour, pen=None))
        if zero_line:
            self.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen(self.theme.series(4),
                                                                       style=Qt.PenStyle.DashLine)))
        self.setLabel("bottom", x_label)
        self.setLabel("left", y_label)


class TimeSeriesPlot(Plot):
    """Lines over time (epoch seconds on a date axis), one per series.

    A series of more than ``DENSE_POINTS`` points is drawn as an aliased hairline without
    markers: Qt strokes an antialiased 2 px line at ~0.2 ms a point per paint (four lines
    of 1,000 points froze the Monitoring view for seconds, of 100 points for ~100 ms), an
    aliased 1 px one through 1,000 points in about a millisecond.
    """

    DENSE_POINTS = 30

    def __init__(self, theme: Theme, title: str | None = None) -> None:
        super().__init__(theme, title)
        self.setAxisItems({"bottom": pg.DateAxisItem()})
        self.retheme()

    def show_series(self, series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                    title: str | None = None, y_label: str = "", min_top: float = 0.0) -> None:
        """Lines from 0 up; the axis reaches at least ``min_top`` so that a flat zero (no
        errors) reads as zero, not as noise around it."""
        self.reset(title)
        legend = self.addLegend(offset=(-10, 10)) if len(series) > 1 else None
        if legend is not None:
            legend.setLabelTextColor(self.theme.colour("plot_foreground"))
        for k, (name, (xs, ys)) in enumerate(series.items()):
            colour = self.theme.series(k)
            marks = {"symbol": "o", "symbolSize": 4, "symbolBrush": colour, "symbolPen": None}
            dense = len(xs) > self.DENSE_POINTS
            self.plot(np.asarray(xs, float), np.asarray(ys, float), name=name,
                      pen=pg.mkPen(colour, width=1 if dense else 2),
                      **({"antialias": False} if dense else marks))
        self.setLabel("left", y_label)
        top = max((max(ys, default=0.0) for _, ys in series.values()), default=0.0)
        self.setYRange(0, max(top * 1.15, min_top, 1e-9), padding=0)
        # Both ranges set here: auto-range would walk every point again at each paint.
        starts = [xs[0] for xs, _ in series.values() if len(xs)]
        ends = [xs[-1] for xs, _ in series.values() if len(xs)]
        if starts:
            self.setXRange(min(starts), max(max(ends), min(starts) + 1.0), padding=0.02)


class Heatmap(Plot):
    """A matrix of coloured cells with row and column labels; a click names the cell."""

    cell_clicked = Signal(int, int)  # row, column

    def __init__(self, theme: Theme, title: str | None = None) -> None:
        super().__init__(theme, title)
        self.image = pg.ImageItem()
        self.matrix = np.zeros((0, 0))
        self.cmap = pg.ColorMap([0.0, 1.0], [QColor("white"), QColor("black")])
        self.getPlotItem().getViewBox().invertY(True)
        self.scene().sigMouseClicked.connect(self._clicked)

    def show_matrix(self, matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str],
                    colours: Sequence[str], levels: tuple[float, float], title: str = "",
                    annotate: bool = True, fmt: str = "{:.2f}",
                    positions: Sequence[float] | None = None) -> None:
        """``colours`` sit at ``positions`` (0…1 of ``levels``; evenly spread by default)."""
        self.reset(title)
        self.matrix = np.asarray(matrix, dtype=float)
        self.image = pg.ImageItem()
        stops = np.linspace(0, 1, len(colours)) if positions is None else np.asarray(positions)
        self.cmap = pg.ColorMap(stops, [QColor(c) for c in colours])
        self.image.setLookupTable(self.cmap.getLookupTable(nPts=256))
        # ImageItem is indexed [x, y]: columns across, rows down.
        self.image.setImage(np.nan_to_num(self.matrix.T, nan=levels[0]), levels=levels)
        self.addItem(self.image)
        self.getAxis("left").setTicks([[(i + 0.5, str(r)[:24]) for i, r in enumerate(rows)]])
        self.set_ticks("bottom", [str(c) for c in columns], max_shown=12, offset=0.5, width=14)
        if annotate and self.matrix.size <= 400:
            self._annotate(fmt, levels)
        self.getViewBox().setRange(xRange=(0, max(1, len(columns))),
                                   yRange=(0, max(1, len(rows))), padding=0.02)

    def _annotate(self, fmt: str, levels: tuple[float, float]) -> None:
        font = QFont()
        font.setPointSize(8)
        span = (levels[1] - levels[0]) or 1.0
        for (r, c), value in np.ndenumerate(self.matrix):
            if np.isnan(value):
                continue
            # Dark text on light cells, light text on dark ones, whatever the theme.
            cell = self.cmap.map((value - levels[0]) / span, mode="qcolor")
            text = pg.TextItem(fmt.format(value), anchor=(0.5, 0.5),
                               color="#ffffff" if cell.lightnessF() < 0.55 else "#1d2330")
            text.setFont(font)
            text.setPos(c + 0.5, r + 0.5)
            self.addItem(text)

    def _clicked(self, event: object) -> None:
        pos = event.scenePos()  # type: ignore[attr-defined]
        point: QPointF = self.getViewBox().mapSceneToView(pos)
        r, c = int(np.floor(point.y())), int(np.floor(point.x()))
        if 0 <= r < self.matrix.shape[0] and 0 <= c < self.matrix.shape[1]:
            self.cell_clicked.emit(r, c)
