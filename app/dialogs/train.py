"""The train dialog: data version, target, features, algorithm, parameters, optional search.

It only gathers a :class:`TrainRequest`; the Experiments view runs it as a task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.context import AppContext
from app.widgets.param_form import ParamForm
from core import training
from core.catalog import Catalog
from core.datasets import DatasetVersion, list_datasets, list_versions

if TYPE_CHECKING:
    from core.training import Algorithm
    from core.training.algorithms import ParamValue

DEFAULT_ALGO = "gradient_boosting"


@dataclass(frozen=True)
class SearchRequest:
    kind: str
    trials: int
    metric: str | None
    cv: int


@dataclass(frozen=True)
class TrainRequest:
    ref: str
    target: str
    features: list[str]
    algo: str
    params: dict[str, ParamValue] = field(default_factory=dict)
    seed: int = 0
    test_size: float = 0.2
    search: SearchRequest | None = None

    @property
    def title(self) -> str:
        verb = f"Search {self.search.trials} × {self.algo}" if self.search else f"Train {self.algo}"
        return f"{verb} on {self.ref}"


@dataclass(frozen=True)
class TrainChoices:
    versions: list[DatasetVersion]
    algorithms: dict[str, Algorithm]
    metrics: list[str]


def train_choices(catalog: Catalog) -> TrainChoices:
    """What the form offers; runs in a worker (the algorithm registry imports scikit-learn)."""
    versions = [v for d in list_datasets(catalog) for v in list_versions(catalog, d.name)]
    return TrainChoices(versions, dict(training.ALGORITHMS), list(training.METRICS))


class TrainDialog(QDialog):
    def __init__(self, ctx: AppContext, preferred: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.preferred = preferred
        self.request: TrainRequest | None = None
        self.setWindowTitle("Train a model")
        self.resize(720, 640)
        layout = QHBoxLayout(self)
        left, right = QVBoxLayout(), QVBoxLayout()
        layout.addLayout(left, 1)
        layout.addLayout(right, 1)

        data = QFormLayout()
        self.dataset = QComboBox()
        self.dataset.setObjectName("trainDataset")
        self.dataset.currentIndexChanged.connect(self._dataset_changed)
        self.target = QComboBox()
        self.target.setObjectName("trainTarget")
        self.target.currentTextChanged.connect(self._target_changed)
        data.addRow("Dataset version", self.dataset)
        data.addRow("Target", self.target)
        left.addLayout(data)
        left.addWidget(QLabel("Features"))
        self.features = QListWidget()
        self.features.setObjectName("trainFeatures")
        left.addWidget(self.features, 1)
        pick = QHBoxLayout()
        for text, state in (("All", Qt.CheckState.Checked), ("None", Qt.CheckState.Unchecked)):
            button = QPushButton(text)
            button.setAutoDefault(False)
            button.clicked.connect(lambda _=False, s=state: self._check_all(s))
            pick.addWidget(button)
        pick.addStretch(1)
        left.addLayout(pick)

        algo_form = QFormLayout()
        self.algo = QComboBox()
        self.algo.setObjectName("trainAlgo")
        self.algorithms: dict[str, Algorithm] = {}
        self.algo.currentTextChanged.connect(self._algo_changed)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.test_size = QDoubleSpinBox()
        self.test_size.setRange(0.05, 0.5)
        self.test_size.setSingleStep(0.05)
        self.test_size.setValue(0.2)
        algo_form.addRow("Algorithm", self.algo)
        algo_form.addRow("Seed", self.seed)
        algo_form.addRow("Holdout share", self.test_size)
        right.addLayout(algo_form)
        params_box = QGroupBox("Parameters")
        params_layout = QVBoxLayout(params_box)
        self.params = ParamForm()
        params_layout.addWidget(self.params)
        right.addWidget(params_box)
        right.addWidget(self._search_box())
        right.addStretch(1)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.train_button = self.buttons.addButton("Train", QDialogButtonBox.ButtonRole.AcceptRole)
        self.train_button.setDefault(True)
        self.train_button.setEnabled(False)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        right.addWidget(self.buttons)
        self.params.validity_changed.connect(lambda ok: self._update_button())
        ctx.tasks.run("Prepare the train form", lambda c: train_choices(c.catalog),
                      self._choices, visible=False)

    def _search_box(self) -> QGroupBox:
        self.search = QGroupBox("Search parameters (cross-validated trials)")
        self.search.setObjectName("trainSearch")
        self.search.setCheckable(True)
        self.search.setChecked(False)
        form = QFormLayout(self.search)
        self.search_kind = QComboBox()
        self.search_kind.addItems(["random", "grid"])
        self.trials = QSpinBox()
        self.trials.setRange(1, 1000)
        self.trials.setValue(10)
        self.rank_metric = QComboBox()
        self.rank_metric.addItem("default")
        self.cv = QSpinBox()
        self.cv.setRange(2, 10)
        self.cv.setValue(3)
        form.addRow("Kind", self.search_kind)
        form.addRow("Trials", self.trials)
        form.addRow("Rank by", self.rank_metric)
        form.addRow("CV folds", self.cv)
        return self.search

    # --- filling in ---------------------------------------------------------------------
    def _choices(self, choices: TrainChoices) -> None:
        self.algorithms = choices.algorithms
        self.rank_metric.addItems(choices.metrics)
        self.algo.blockSignals(True)
        for name, algorithm in choices.algorithms.items():
            self.algo.addItem(name)
            self.algo.setItemData(self.algo.count() - 1,
                                  f"{algorithm.summary} ({', '.join(algorithm.tasks)})",
                                  Qt.ItemDataRole.ToolTipRole)
        self.algo.blockSignals(False)
        self.algo.setCurrentText(DEFAULT_ALGO)
        self._algo_changed(self.algo.currentText())
        self._versions_listed(choices.versions)

    def _versions_listed(self, versions: list[DatasetVersion]) -> None:
        self.dataset.blockSignals(True)
        for dv in versions:
            self.dataset.addItem(dv.ref, dv)
        self.dataset.blockSignals(False)
        wanted = self.dataset.findText(self.preferred) if self.preferred else -1
        if wanted < 0 and self.preferred:
            wanted = next((i for i in range(self.dataset.count())
                           if self.dataset.itemText(i).split("@")[0] == self.preferred), -1)
        self.dataset.setCurrentIndex(max(0, wanted))
        self._dataset_changed()

    def version(self) -> DatasetVersion | None:
        dv = self.dataset.currentData()
        return dv if isinstance(dv, DatasetVersion) else None

    def _dataset_changed(self) -> None:
        dv = self.version()
        self.target.blockSignals(True)
        self.target.clear()
        if dv is not None:
            self.target.addItems([c.name for c in dv.columns])
            suggested = str(dv.source.get("target", ""))
            self.target.setCurrentText(suggested if suggested in
                                       [c.name for c in dv.columns] else dv.columns[-1].name)
        self.target.blockSignals(False)
        self._target_changed(self.target.currentText())

    def _target_changed(self, target: str) -> None:
        dv = self.version()
        self.features.clear()
        for column in dv.columns if dv else []:
            if column.name == target:
                continue
            item = QListWidgetItem(f"{column.name}  ({column.type})")
            item.setData(Qt.ItemDataRole.UserRole, column.name)
            item.setCheckState(Qt.CheckState.Checked)
            self.features.addItem(item)
        self._update_button()

    def _check_all(self, state: Qt.CheckState) -> None:
        for i in range(self.features.count()):
            self.features.item(i).setCheckState(state)

    def _algo_changed(self, name: str) -> None:
        if name in self.algorithms:
            self.params.set_algorithm(self.algorithms[name])

    def chosen_features(self) -> list[str]:
        return [str(self.features.item(i).data(Qt.ItemDataRole.UserRole))
                for i in range(self.features.count())
                if self.features.item(i).checkState() == Qt.CheckState.Checked]

    def _update_button(self) -> None:
        ok = self.version() is not None and self.params.problem() is None
        self.train_button.setEnabled(ok)

    def build_request(self) -> TrainRequest:
        dv = self.version()
        assert dv is not None
        search = None
        if self.search.isChecked():
            metric = self.rank_metric.currentText()
            search = SearchRequest(self.search_kind.currentText(), self.trials.value(),
                                   None if metric == "default" else metric, self.cv.value())
        params = self.params.changed_values() if search else self.params.values()
        return TrainRequest(dv.ref, self.target.currentText(), self.chosen_features(),
                            self.algo.currentText(), params, self.seed.value(),
                            round(self.test_size.value(), 4), search)

    def _accept(self) -> None:
        self.request = self.build_request()
        self.accept()
