"""Monitoring: per-agent requests/s, error rate and latency over time, the drift heatmap and
the alerts. Refresh pulls telemetry from the agents in the background first."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import fleet_calls as calls
from app.context import AppContext
from app.models.fleet import AlertsTableModel
from app.monitoring_data import Snapshot, snapshot
from app.views.base import View
from app.views.datasets import record_table
from app.widgets.accuracy_panel import AccuracyPanel
from app.widgets.drift_panel import DriftPanel
from app.widgets.plots import TimeSeriesPlot

if TYPE_CHECKING:
    from pathlib import Path

    from core.drift import FeatureDrift
    from core.feedback import FeedbackImport
    from core.telemetry.series import SeriesPoint

BUCKETS = {"10 s": 10.0, "1 min": 60.0, "5 min": 300.0, "1 h": 3600.0}
ALL_AGENTS = "All agents"
AUTO_REFRESH_MS = 30_000


def shadow_text(summaries: list[dict[str, Any]]) -> str:
    """One line per (agent, champion, challenger) running in shadow."""
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:g} ms"

    lines = []
    for s in summaries:
        agreement = "-" if s["agreement"] is None else f"{s['agreement'] * 100:.1f} %"
        line = (f"Shadow on {s['agent']}: v{s['version']} vs challenger v{s['challenger']} — "
                f"agreement {agreement} over {s['rows']:,} rows; latency mean "
                f"{ms(s['latency_mean_ms'])}, p99 {ms(s['latency_p99_ms'])}; dropped "
                f"{s['dropped']}, timeouts {s['timeouts']}, errors {s['errors']}")
        if s["divergence"]:
            line += "; diverges on " + ", ".join(f"{k} ({v})" for k, v in s["divergence"].items())
        lines.append(line)
    return "\n".join(lines)


class MonitoringView(View):
    title = "Monitoring"
    icon_name = "monitoring"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.model_box = QComboBox()
        self.model_box.setObjectName("monitorModel")
        self.model_box.setMinimumWidth(140)
        self.agent_box = QComboBox()
        self.agent_box.setObjectName("monitorAgent")
        self.agent_box.addItem(ALL_AGENTS)
        self.bucket_box = QComboBox()
        self.bucket_box.addItems(list(BUCKETS))
        self.bucket_box.setCurrentText("1 min")
        self.auto = QCheckBox("Auto-refresh")
        self.cleared = QCheckBox("Show cleared alerts")
        for label, widget in (("Model", self.model_box), ("Agent", self.agent_box),
                              ("Window", self.bucket_box)):
            self.toolbar.addWidget(QLabel(f" {label} "))
            self.toolbar.addWidget(widget)
        self.toolbar.addWidget(self.auto)
        self.refresh_action = self.action("Refresh", "refresh", self.refresh, None,
                                          "Pull telemetry from the agents, then recompute")
        for box in (self.model_box, self.agent_box, self.bucket_box):
            box.activated.connect(lambda _=0: self.load(pull=False))
        self.cleared.toggled.connect(lambda _: self.load(pull=False))

        self.requests = TimeSeriesPlot(ctx.theme, "Requests / s")
        self.errors = TimeSeriesPlot(ctx.theme, "Error rate")
        self.latency = TimeSeriesPlot(ctx.theme, "Latency ms (p50, p99)")
        plots = QSplitter(Qt.Orientation.Horizontal)
        for plot in (self.requests, self.errors, self.latency):
            plots.addWidget(plot)
        self.drift = DriftPanel(ctx.theme)
        self.drift.cell_selected.connect(self._load_distribution)
        self.accuracy = AccuracyPanel()
        self.accuracy.import_requested.connect(self._choose_labels)
        quality = QSplitter(Qt.Orientation.Horizontal)
        quality.addWidget(self.drift)
        quality.addWidget(self.accuracy)
        quality.setSizes([600, 400])
        self.alerts = AlertsTableModel()
        self.alerts_table = record_table(self.alerts, "alertsTable")
        alerts_box = QWidget()
        alerts_layout = QVBoxLayout(alerts_box)
        alerts_layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.alerts_title = QLabel("Alerts")
        self.alerts_title.setObjectName("sectionTitle")
        head.addWidget(self.alerts_title)
        head.addStretch(1)
        head.addWidget(self.cleared)
        alerts_layout.addLayout(head)
        alerts_layout.addWidget(self.alerts_table)
        self.summary = QLabel("Refresh to pull telemetry from the agents.")
        self.summary.setObjectName("muted")
        self.shadow = QLabel()
        self.shadow.setObjectName("shadowSummary")
        self.shadow.setWordWrap(True)
        self.shadow.hide()
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(plots)
        self.splitter.addWidget(quality)
        self.splitter.addWidget(alerts_box)
        self.splitter.setSizes([230, 300, 170])
        self.body.addWidget(self.summary)
        self.body.addWidget(self.shadow)
        self.body.addWidget(self.splitter, 1)

        self.snap: Snapshot | None = None
        self._stages: list[Callable[[], None]] = []  # the rest of a snapshot to draw
        self.timer = QTimer(self)
        self.timer.setInterval(AUTO_REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.auto.toggled.connect(lambda on: self.timer.start() if on else self.timer.stop())
        ctx.events.telemetry_changed.connect(lambda: self.mark_stale())
        ctx.events.agents_changed.connect(lambda: self.mark_stale())

    def refresh(self) -> None:
        self.load(pull=True)

    def load(self, pull: bool) -> None:
        model = self.model_box.currentText() or None
        chosen = self.agent_box.currentText()
        agent = None if chosen in ("", ALL_AGENTS) else chosen
        bucket, cleared = BUCKETS[self.bucket_box.currentText()], self.cleared.isChecked()
        self.ctx.tasks.run(
            "Pull telemetry" if pull else "Load monitoring",
            lambda c: snapshot(c.catalog, model, agent, bucket, pull=pull,
                               include_cleared=cleared, progress=c.progress, cancel=c.cancel),
            self.show_snapshot, visible=pull, key="monitoring")

    def show_snapshot(self, snap: Snapshot) -> None:
        """Shown over five turns of the event loop — text, each of the three charts, then
        the heatmap and alerts — so that with 1,000 windows no single turn (and the repaint
        after it) holds the UI thread long; a newer snapshot drops the older one's rest."""
        self.snap = snap
        self._fill(self.model_box, snap.models, snap.model)
        current_agent = self.agent_box.currentText()
        self._fill(self.agent_box, [ALL_AGENTS, *snap.agents], current_agent or ALL_AGENTS)
        pulled = sum(p.rows for p in snap.pulled)
        failed = [f"{p.agent}: {p.error}" for p in snap.pulled if p.error]
        text = snap.model or "No model registered yet"
        if snap.pulled:
            text += f" — pulled {pulled:,} new telemetry records" if pulled else \
                " — telemetry up to date"
        if failed:
            text += " — " + "; ".join(failed)
        if snap.policy:
            text += " — " + "; ".join(snap.policy)
        self.summary.setText(text)
        if snap.retrained:
            self.ctx.events.models_changed.emit()
        self.shadow.setText(shadow_text(snap.shadow))
        self.shadow.setVisible(bool(snap.shadow))
        self.accuracy.show_report(snap.accuracy)
        self._stages = [*self._charts(snap), lambda: self._show_drift(snap)]
        QTimer.singleShot(0, self, self._next_stage)

    def drawn(self) -> bool:
        """Is the last snapshot shown in full (every stage of show_snapshot drawn)?"""
        return not self._stages

    def _next_stage(self) -> None:
        """One stage per turn; the next is queued after it (1 ms, so that this stage's
        repaint comes first and is not merged with the next one's into one long turn)."""
        try:
            if self._stages:
                self._stages.pop(0)()
        finally:  # a stage that fails (reported by Qt's handler) leaves the rest drawn
            if self._stages:
                QTimer.singleShot(1, self, self._next_stage)

    def _show_drift(self, snap: Snapshot) -> None:
        self.drift.show_grid(snap.grid, snap.report.thresholds if snap.report else None,
                             snap.drift_note)
        self.alerts.set_records(snap.alerts)
        self.alerts_table.resizeColumnToContents(2)
        self.alerts_title.setText(f"Alerts ({sum(a.open for a in snap.alerts)} open)")

    def _choose_labels(self) -> None:
        from pathlib import Path

        name, _ = QFileDialog.getOpenFileName(self, "Import labels", "",
                                              "CSV files (*.csv);;All files (*)")
        if name:
            self.import_labels(Path(name))

    def import_labels(self, path: Path) -> None:
        """The GUI twin of `outpost feedback import FILE --model M` (the model shown)."""
        model = self.model_box.currentText()
        if not model:
            self.summary.setText("Register and deploy a model before importing its labels.")
            return
        self.ctx.tasks.run(f"Import labels {path.name}",
                           lambda c: calls.import_feedback(c.catalog, path, model, c.progress),
                           self._labels_imported)

    def _labels_imported(self, result: FeedbackImport) -> None:
        self.summary.setText(
            f"{result.labels:,} labels for {result.model}: {result.new:,} new, "
            f"{result.replaced:,} replaced, {result.unchanged:,} unchanged, "
            f"{result.duplicates:,} duplicate rows, {result.orphans:,} without a prediction yet")
        self.load(pull=False)

    def _load_distribution(self, cell: FeatureDrift) -> None:
        snap = self.snap
        if snap is None or snap.report is None or snap.model is None:
            return
        model, version, agent = snap.model, snap.report.version, snap.report.agent
        since = cell.window_start
        until = None if since is None else since + snap.bucket_s
        self.ctx.tasks.run(
            f"Distribution of {cell.feature}",
            lambda c: calls.feature_distribution(c.catalog, model, version, cell.feature, agent,
                                                 since, until),
            self.drift.show_distribution, visible=False, key="distribution")

    def _fill(self, box: QComboBox, items: list[str], current: str | None) -> None:
        box.blockSignals(True)
        box.clear()
        box.addItems(items)
        if current in items:
            box.setCurrentText(current)
        box.blockSignals(False)

    def _charts(self, snap: Snapshot) -> list[Callable[[], None]]:
        """One call per chart (requests, errors, latency), each drawing only its own."""
        def xs(points: list[SeriesPoint]) -> list[float]:
            return [p.t for p in points]

        series = {a: pts for a, pts in snap.series.items() if pts}

        def latency() -> None:
            lines: dict[str, tuple[list[float], list[float]]] = {}
            for agent, points in series.items():
                lines[f"{agent} p50"] = (xs(points), [x.p50_ms or 0.0 for x in points])
                lines[f"{agent} p99"] = (xs(points), [x.p99_ms or 0.0 for x in points])
            self.latency.show_series(lines, "Latency ms (p50, p99)", "ms", min_top=1.0)

        return [
            lambda: self.requests.show_series({a: (xs(p), [x.requests_per_s for x in p])
                                               for a, p in series.items()}, "Requests / s",
                                              "req/s", min_top=1.0),
            lambda: self.errors.show_series({a: (xs(p), [100 * x.error_rate for x in p])
                                             for a, p in series.items()}, "Error rate", "%",
                                            min_top=5.0),
            latency]

    def retheme(self) -> None:
        for plot in (self.requests, self.errors, self.latency):
            plot.retheme()
        if self.snap is not None:
            for chart in self._charts(self.snap):
                chart()
            self.drift.retheme()

    def save_state(self) -> dict[str, object]:
        return {"splitter": self.splitter.saveState(), "bucket": self.bucket_box.currentText()}

    def restore_state(self, state: dict[str, object]) -> None:
        if state.get("splitter") is not None:
            self.splitter.restoreState(state["splitter"])  # type: ignore[arg-type]
        if str(state.get("bucket")) in BUCKETS:
            self.bucket_box.setCurrentText(str(state["bucket"]))
