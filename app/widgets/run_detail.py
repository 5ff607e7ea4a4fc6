"""One run in detail: summary, evaluation (confusion matrix or residuals), feature importance."""
from __future__ import annotations

import html
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtWidgets import QStackedWidget, QTabWidget, QTextBrowser

from app.context import AppContext
from app.models.records import number
from app.models.runs import scalar_metrics
from app.widgets.plots import BarChart, Heatmap, ScatterPlot
from core import training

if TYPE_CHECKING:
    from core.training import Residuals, Run

def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><td><b>{html.escape(str(k))}</b>&nbsp;&nbsp;</td>"
                   f"<td>{html.escape(number(v) if isinstance(v, float) else str(v))}</td></tr>"
                   for k, v in pairs)


def summary_html(run: Run, order: list[str]) -> str:
    metrics = [(m, run.metrics.get(m)) for m in scalar_metrics([run], order)]
    parts = [
        f"<h3>Run {run.short} · {html.escape(run.algo)} · {run.task}</h3>",
        f"<p>{run.kind} on <b>{html.escape(run.dataset)}@{run.dataset_version[:12]}</b>, "
        f"target <b>{html.escape(run.target)}</b>, seed {run.seed}, "
        f"holdout {run.split.get('test_size')}, {run.duration_s:.1f} s, {run.status}</p>",
        "<h4>Metrics</h4><table>" + _rows(metrics) + "</table>",
        "<h4>Parameters</h4><table>" + _rows(sorted(run.params.items())) + "</table>",
        f"<h4>Features ({len(run.features)})</h4><p>"
        + html.escape(", ".join(f"{f} ({run.feature_kinds.get(f, '?')})" for f in run.features))
        + "</p>",
    ]
    if run.search:
        parts.append("<h4>Search</h4><table>" + _rows(sorted(run.search.items())) + "</table>")
    if run.notes:
        parts.append("<h4>Notes</h4><ul>" + "".join(f"<li>{html.escape(n)}</li>"
                                                     for n in run.notes) + "</ul>")
    parts.append("<h4>Packages</h4><table>" + _rows(sorted(run.packages.items())) + "</table>")
    return "".join(parts)


class RunDetail(QTabWidget):
    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.summary = QTextBrowser()
        self.summary.setObjectName("runSummary")
        self.confusion = Heatmap(ctx.theme, "Confusion matrix (holdout)")
        self.residual_plot = ScatterPlot(ctx.theme, "Residuals (holdout)")
        self.evaluation = QStackedWidget()
        self.evaluation.addWidget(self.confusion)
        self.evaluation.addWidget(self.residual_plot)
        self.importance = BarChart(ctx.theme, "Permutation importance")
        self.compare = BarChart(ctx.theme, "Comparison")
        self.addTab(self.summary, "Summary")
        self.addTab(self.evaluation, "Evaluation")
        self.addTab(self.importance, "Importance")
        self.addTab(self.compare, "Compare")
        self.run: Run | None = None
        self.compared: list[Run] = []
        self.metric_order: list[str] = []

    def show_run(self, run: Run | None) -> None:
        self.run = run
        if run is None:
            self.summary.setHtml("<p>Select a run, or train one.</p>")
            self.confusion.reset()
            self.importance.reset()
            return
        self.summary.setHtml(summary_html(run, self.metric_order))
        self._show_evaluation(run)
        if run.importance:
            self.importance.show_ranked(list(run.importance), list(run.importance.values()),
                                        "Permutation importance (holdout)")
        else:
            self.importance.reset("No importance recorded for this run")

    def _show_evaluation(self, run: Run) -> None:
        matrix = run.metrics.get("confusion_matrix")
        if run.task == "classification" and matrix:
            labels = [str(v) for v in run.metrics.get("labels") or run.labels or []]
            data = np.asarray(matrix, dtype=float)
            self.evaluation.setCurrentWidget(self.confusion)
            self.confusion.show_matrix(
                data, [f"true {x}" for x in labels], [f"pred {x}" for x in labels],
                [self.ctx.theme.colour("alternate"), self.ctx.theme.series(0)],
                (0.0, float(data.max() or 1)), "Confusion matrix (holdout)", fmt="{:.0f}")
        elif run.task == "regression" and run.model_object:
            self.evaluation.setCurrentWidget(self.residual_plot)
            self.residual_plot.reset("Residuals: computing…")
            self.ctx.tasks.run(f"Residuals of {run.short}",
                               lambda c: training.residuals(c.catalog, run),
                               partial(self._show_residuals, run),
                               visible=False, key="residuals")
        else:
            self.evaluation.setCurrentWidget(self.confusion)
            self.confusion.reset("No evaluation plot for this run (a search trial has no model)")

    def _show_residuals(self, run: Run, points: Residuals) -> None:
        if self.run is not None and self.run.id == run.id:
            self.residual_plot.show_points(points.predicted, points.residual, "Residuals (holdout)",
                                           "predicted", "actual − predicted", zero_line=True)

    def show_comparison(self, runs: list[Run]) -> None:
        """Metrics every selected run has, one colour per run."""
        self.compared = runs
        shared = [m for m in scalar_metrics(runs, self.metric_order)
                  if not m.endswith("_std") and m != "cv_folds"
                  and all(isinstance(r.metrics.get(m), int | float) for r in runs)]
        series = {f"{r.short} {r.algo}": [float(r.metrics[m]) for m in shared] for r in runs}
        self.compare.show_grouped(shared, series, f"Comparison of {len(runs)} runs")
        self.setCurrentWidget(self.compare)

    def retheme(self) -> None:
        for plot in (self.confusion, self.residual_plot, self.importance, self.compare):
            plot.retheme()
        if self.run is not None:
            self.show_run(self.run)
        if len(self.compared) > 1:
            self.show_comparison(self.compared)
