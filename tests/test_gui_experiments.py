"""The Experiments view: train and search through the dialog, the runs table, run detail."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from app.dialogs.train import TrainDialog
from app.views.experiments import ExperimentsView
from app.window import MainWindow
from core.catalog import Catalog
from core.datasets import import_frame
from core.samples import SAMPLES
from tests.support.gui import (  # noqa: F401 (fixtures)
    Heartbeat,
    catalog_fixture,
    dismiss_errors,
    error_dialogs,
    make_window_fixture,
)


@pytest.fixture
def samples(catalog: Catalog) -> None:
    for sample in SAMPLES[:2]:  # breast_cancer (classification), diabetes (regression)
        import_frame(catalog, sample.name, sample.build(), {"target": sample.target})


def _view(window: MainWindow) -> ExperimentsView:
    view = window.view(ExperimentsView)
    assert isinstance(view, ExperimentsView)
    return view


def _dialog(qtbot: QtBot, view: ExperimentsView, dataset: str, algo: str) -> TrainDialog:
    dialog = view.open_train(dataset)
    qtbot.waitUntil(lambda: dialog.version() is not None, timeout=5000)
    assert dialog.dataset.currentText().startswith(f"{dataset}@")
    dialog.algo.setCurrentText(algo)
    return dialog


def _train(qtbot: QtBot, view: ExperimentsView, dialog: TrainDialog, runs_before: int) -> None:
    assert dialog.train_button.isEnabled()
    dialog.train_button.click()
    qtbot.waitUntil(lambda: len(view.runs.records) == runs_before + 1, timeout=60_000)


@pytest.mark.usefixtures("samples")
def test_train_classifier_validates_params_and_shows_detail(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([ExperimentsView])
    view = _view(window)
    dialog = _dialog(qtbot, view, "breast_cancer", "logistic_regression")
    assert dialog.target.currentText() == "target"
    assert "target" not in dialog.chosen_features() and len(dialog.chosen_features()) == 30
    c_field = dialog.params.fields["C"].widget
    assert isinstance(c_field, QLineEdit) and c_field.text() == "1"
    c_field.setText("-3")
    assert not dialog.train_button.isEnabled()
    assert "parameter C must be in" in dialog.params.error.text()
    c_field.setText("0.5")
    _train(qtbot, view, dialog, 0)
    run = view.detail.run
    assert run is not None and run.algo == "logistic_regression" and run.params["C"] == 0.5
    assert "accuracy" in view.detail.summary.toPlainText()
    # The plots are drawn when their tab is shown, not while the landing run is selected.
    assert view.detail.confusion.matrix.shape == (0, 0)
    assert not view.detail.importance.getPlotItem().items
    view.detail.setCurrentWidget(view.detail.evaluation)
    assert view.detail.confusion.matrix.shape == (2, 2)
    assert view.detail.confusion.matrix.sum() == round(569 * 0.2 + 0.5)
    view.detail.setCurrentWidget(view.detail.importance)
    assert view.detail.importance.getPlotItem().items

    # A second, different run: the table sorts by any metric and compares selected runs.
    dialog = _dialog(qtbot, view, "breast_cancer", "random_forest")
    dialog.params.fields["n_estimators"].widget.setValue(20)  # type: ignore[attr-defined]
    _train(qtbot, view, dialog, 1)
    # The importance tab is showing: it is redrawn for the new run on the next turn.
    assert view.detail.run is not None and view.detail.run.algo == "random_forest"
    qtbot.waitUntil(lambda: view.detail.importance not in view.detail.stale, timeout=5_000)
    assert view.detail.evaluation in view.detail.stale  # hidden: not drawn
    view.sort_by_metric("accuracy", descending=True)
    top = view.proxy.index(0, view.runs.metric_column("accuracy")).data()
    bottom = view.proxy.index(1, view.runs.metric_column("accuracy")).data()
    assert float(top) >= float(bottom)
    view.table.selectAll()
    assert view.compare_action.isEnabled()
    view.compare_action.trigger()
    assert len(view.detail.compared) == 2
    assert view.detail.currentWidget() is view.detail.compare


@pytest.mark.usefixtures("samples")
def test_regression_run_shows_residuals_and_reproduces(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([ExperimentsView])
    view = _view(window)
    dialog = _dialog(qtbot, view, "diabetes", "ridge")
    _train(qtbot, view, dialog, 0)
    view.detail.setCurrentWidget(view.detail.evaluation)
    plot = view.detail.residual_plot
    qtbot.waitUntil(lambda: bool(plot.getPlotItem().items), timeout=10_000)
    points = plot.getPlotItem().items[0]
    assert len(points.data) == round(442 * 0.2 + 0.5)  # type: ignore[attr-defined]
    view.reproduce_action.trigger()
    qtbot.waitUntil(lambda: view.last_message is not None, timeout=30_000)
    assert view.last_message is not None
    assert "reproduced exactly" in view.last_message.text()
    view.last_message.close()


@pytest.mark.usefixtures("samples")
def test_failed_training_shows_its_message_and_window_stays_usable(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([ExperimentsView])
    view = _view(window)
    # A classifier on the diabetes score: 214 classes, many with a single row.
    dialog = _dialog(qtbot, view, "diabetes", "logistic_regression")
    dialog.train_button.click()
    qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=30_000)
    message = error_dialogs(window)[0].text()
    assert "target" in message and "\n" not in message
    assert "Traceback" in error_dialogs(window)[0].detailedText()
    dismiss_errors(window)
    dialog = _dialog(qtbot, view, "diabetes", "linear_regression")
    _train(qtbot, view, dialog, 0)


@pytest.mark.usefixtures("samples")
def test_search_keeps_the_ui_beating_and_registers_the_best(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([ExperimentsView])
    view = _view(window)
    dialog = _dialog(qtbot, view, "breast_cancer", "random_forest")
    dialog.search.setChecked(True)
    dialog.trials.setValue(4)
    dialog.rank_metric.setCurrentText("accuracy")
    dialog.params.fields["n_estimators"].widget.setValue(15)  # type: ignore[attr-defined]
    request = dialog.build_request()
    # Only the changed parameter is fixed; the others are left to the search.
    assert request.search is not None and request.params == {"n_estimators": 15}
    with Heartbeat() as heart:
        _train(qtbot, view, dialog, 0)
    heart.assert_responsive(100, "during search")
    run = view.detail.run
    assert run is not None and run.kind == "search" and run.search is not None
    assert run.search["trials"] == 4
    view.show_trials.setChecked(True)
    qtbot.waitUntil(lambda: len(view.runs.records) == 5, timeout=5000)

    registered: list[bool] = []
    window.ctx.events.models_changed.connect(lambda: registered.append(True))
    view.table.selectRow(view.proxy.mapFromSource(view.runs.index(
        view.runs.row_of(run.id) or 0, 0)).row())
    ask = view.ask_register()
    assert ask is not None
    ask.setTextValue("cancer")
    ask.accept()
    qtbot.waitUntil(lambda: bool(registered), timeout=60_000)
    assert "Registered cancer@1" in window.statusBar().currentMessage()
