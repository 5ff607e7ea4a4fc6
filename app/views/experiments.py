"""Experiments: train and search, the runs table (sortable by any metric), run detail,
comparison of selected runs, reproduction, and registering a run as a model."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QInputDialog,
    QMessageBox,
    QSplitter,
    QTableView,
)

from app.context import AppContext
from app.dialogs.train import TrainDialog, TrainRequest
from app.models.records import RECORD_ROLE, sorting_proxy
from app.models.runs import RunsTableModel
from app.statusbar import say
from app.tasks import TaskContext
from app.views.base import View
from app.widgets.run_detail import RunDetail
from core import registry, training

if TYPE_CHECKING:
    from core.registry import ModelVersion
    from core.training import Reproduction, Run, SearchResult


def run_request(c: TaskContext, request: TrainRequest) -> Run:
    """Train or search as the dialog asked; a search returns its parent run (the refit best).

    ``training.*`` resolves here, in the worker: the package loads scikit-learn on first use.
    """
    if request.search is None:
        return training.train(c.catalog, request.ref, request.target, features=request.features,
                     algo=request.algo, params=request.params, seed=request.seed,
                     test_size=request.test_size, progress=c.progress, cancel=c.cancel)
    s = request.search
    result: SearchResult = training.search(
        c.catalog, request.ref, request.target, algo=request.algo, kind=s.kind,  # type: ignore[arg-type]
        trials=s.trials, metric=s.metric, cv=s.cv, seed=request.seed, params=request.params,
        features=request.features, test_size=request.test_size, progress=c.progress,
        cancel=c.cancel)
    return result.parent


def list_runs_with_metrics(c: TaskContext, trials: bool) -> tuple[list[Run], list[str]]:
    """The runs, and the metric registry's order for their columns."""
    return training.list_runs(c.catalog, include_trials=trials), list(training.METRICS)


def describe_reproduction(r: Reproduction) -> str:
    if r.identical:
        return f"Run {r.run[:8]} reproduced exactly: same metrics, predictions and importance."
    lines = [f"Run {r.run[:8]} did not reproduce exactly "
             f"(largest prediction difference {r.max_prediction_diff:.3g})."]
    lines += [f"{k}: {a} → {b}" for k, (a, b) in r.metric_differences.items()]
    lines += [f"package {k}: {a} → {b}" for k, (a, b) in r.package_changes.items()]
    return "\n".join(lines)


class ExperimentsView(View):
    title = "Experiments"
    icon_name = "experiments"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.train_action = self.action("Train…", "train", self.open_train, "Ctrl+T",
                                        "Train a model, or search its parameters")
        self.compare_action = self.action("Compare", "compare", self.compare_selected, None,
                                          "Chart the metrics of the selected runs")
        self.reproduce_action = self.action("Reproduce", "reproduce", self.reproduce, None,
                                            "Retrain the run as recorded and check equality")
        self.register_action = self.action("Register…", "register", self.ask_register, "Ctrl+R",
                                           "Export the run to ONNX as a new model version")
        self.action("Refresh", "refresh", self.refresh)
        self.show_trials = QCheckBox("Show search trials")
        self.show_trials.toggled.connect(lambda _: self.refresh())
        self.toolbar.addWidget(self.show_trials)

        self.runs = RunsTableModel()
        self.proxy = sorting_proxy(self.runs)
        self.table = QTableView()
        self.table.setObjectName("runsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(7, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.detail = RunDetail(ctx)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setSizes([330, 420])
        self.body.addWidget(self.splitter)
        self._want_run: str | None = None
        self.dialog: TrainDialog | None = None
        self.last_message: QMessageBox | None = None
        self._update_actions()
        ctx.events.runs_changed.connect(self.mark_stale)

    # --- the table -------------------------------------------------------------------------
    def refresh(self) -> None:
        trials = self.show_trials.isChecked()
        self.ctx.tasks.run("List runs", lambda c: list_runs_with_metrics(c, trials),
                           self._listed, visible=False, key="runs")

    def _listed(self, listed: tuple[list[Run], list[str]]) -> None:
        runs, order = listed
        keep = self._want_run or (self.detail.run.id if self.detail.run else None)
        self._want_run = None
        self.runs.order = self.detail.metric_order = order
        self.runs.set_records(runs)
        self.table.resizeColumnsToContents()
        row = self.runs.row_of(keep) if keep else None
        if row is None and runs:
            self.table.selectRow(0)
        elif row is not None:
            self.table.selectRow(self.proxy.mapFromSource(self.runs.index(row, 0)).row())
        else:
            self.detail.show_run(None)
        self._update_actions()

    def selected_runs(self) -> list[Run]:
        rows = self.table.selectionModel().selectedRows()
        return [r.data(RECORD_ROLE) for r in rows]

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        run = current.data(RECORD_ROLE) if current.isValid() else None
        self.detail.show_run(run)
        self._update_actions()

    def _update_actions(self) -> None:
        run = self.detail.run
        self.compare_action.setEnabled(len(self.table.selectionModel().selectedRows()) > 1)
        self.reproduce_action.setEnabled(run is not None and run.kind != "trial")
        self.register_action.setEnabled(run is not None and run.model_object is not None)

    def sort_by_metric(self, metric: str, descending: bool = True) -> None:
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.table.sortByColumn(self.runs.metric_column(metric), order)

    # --- train -----------------------------------------------------------------------------
    def open_train(self, preferred: str | None = None) -> TrainDialog:
        self.dialog = TrainDialog(self.ctx, preferred if isinstance(preferred, str) else None,
                                  self)
        self.dialog.accepted.connect(lambda d=self.dialog: self.start(d.request))
        self.dialog.open()
        return self.dialog

    def start(self, request: TrainRequest | None) -> None:
        if request is None:
            return
        self.ctx.tasks.run(request.title, lambda c: run_request(c, request), self._trained)

    def _trained(self, run: Run) -> None:
        metric = next(iter(run.metrics.items()), None)
        shown = f", {metric[0]} {metric[1]:.4g}" if metric and isinstance(metric[1], float) else ""
        say(self, f"Run {run.short} finished{shown}")
        self._want_run = run.id
        self.ctx.events.runs_changed.emit()

    # --- compare, reproduce, register ------------------------------------------------------
    def compare_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) > 1:
            self.detail.show_comparison(runs)

    def reproduce(self) -> None:
        run = self.detail.run
        if run is None:
            return
        self.ctx.tasks.run(f"Reproduce {run.short}",
                           lambda c: training.reproduce_run(c.catalog, run.id,
                                                            progress=c.progress,
                                                            cancel=c.cancel),
                           self._reproduced)

    def _reproduced(self, result: Reproduction) -> None:
        box = QMessageBox(QMessageBox.Icon.Information if result.identical
                          else QMessageBox.Icon.Warning, "Reproduce",
                          describe_reproduction(result), QMessageBox.StandardButton.Ok, self)
        box.setObjectName("reproduceResult")
        box.open()
        self.last_message = box

    def ask_register(self) -> QInputDialog | None:
        run = self.detail.run
        if run is None:
            return None
        dialog = QInputDialog(self)
        dialog.setObjectName("registerDialog")
        dialog.setWindowTitle("Register model")
        dialog.setLabelText(f"Model name for run {run.short} ({run.algo} on {run.dataset}):")
        dialog.setTextValue(run.dataset)
        dialog.textValueSelected.connect(lambda name, r=run: self.register(r, name.strip()))
        dialog.open()
        return dialog

    def register(self, run: Run, name: str) -> None:
        self.ctx.tasks.run(f"Register {run.short} as {name}",
                           lambda c: registry.register_model(c.catalog, run.id, name,
                                                             progress=c.progress,
                                                             cancel=c.cancel),
                           self._registered)

    def _registered(self, version: ModelVersion) -> None:
        parity = "parity passed" if not version.flagged else "parity FAILED: version flagged"
        say(self, f"Registered {version.ref} ({parity})")
        self.ctx.events.models_changed.emit()

    # --- state -----------------------------------------------------------------------------
    def retheme(self) -> None:
        self.detail.retheme()

    def save_state(self) -> dict[str, object]:
        return {"splitter": self.splitter.saveState(), "trials": self.show_trials.isChecked()}

    def restore_state(self, state: dict[str, object]) -> None:
        if state.get("splitter") is not None:
            self.splitter.restoreState(state["splitter"])  # type: ignore[arg-type]
        self.show_trials.setChecked(str(state.get("trials", "false")).lower() == "true")
