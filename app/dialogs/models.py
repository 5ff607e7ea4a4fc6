"""Dialogs of the Models view: register a run, import an ONNX file, set an alias."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.context import AppContext
from app.dialogs.base import TaskDialog
from app.models.registry import parity_text
from core import registry, training

if TYPE_CHECKING:
    from core.registry import ModelVersion
    from core.training import Run


class RegisterDialog(TaskDialog):
    """Pick a run with a model and a name: ONNX export, parity check, new version."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Register a run as a model", "Register", parent)
        self.result_value: ModelVersion | None = None
        self.run_box = QComboBox()
        self.run_box.setObjectName("registerRun")
        self.run_box.currentIndexChanged.connect(self._run_changed)
        self.name = QLineEdit()
        self.name.setObjectName("registerName")
        self.form.addRow("Run", self.run_box)
        self.form.addRow("Model name", self.name)
        self.ok_button.setEnabled(False)
        ctx.tasks.run("List runs",
                      lambda c: [r for r in training.list_runs(c.catalog) if r.model_object],
                      self._listed, visible=False)

    def _listed(self, runs: list[Run]) -> None:
        for run in runs:
            metric = next((f"{k} {v:.4g}" for k, v in run.metrics.items()
                           if isinstance(v, float)), "")
            self.run_box.addItem(f"{run.short} · {run.algo} on {run.dataset} · {metric}", run)
        self.ok_button.setEnabled(bool(runs))
        if not runs:
            self.error.setText("No trained runs yet: train one in Experiments first.")

    def _run_changed(self) -> None:
        run: Run | None = self.run_box.currentData()
        if run is not None and not self.name.text():
            self.name.setText(run.dataset)

    def succeeded(self, result: ModelVersion) -> None:
        self.ctx.events.models_changed.emit()

    def submit(self) -> None:
        run: Run | None = self.run_box.currentData()
        name = self.name.text().strip()
        if run is not None:
            self.run(f"Register {run.short} as {name}",
                     lambda c: registry.register_model(c.catalog, run.id, name,
                                                       progress=c.progress, cancel=c.cancel))


class ImportOnnxDialog(TaskDialog):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Import an ONNX model", "Import", parent)
        self.path = QLineEdit()
        self.path.setObjectName("onnxPath")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.name = QLineEdit()
        self.name.setObjectName("onnxName")
        self.form.addRow("File", row)
        self.form.addRow("Model name", self.name)
        self.path.textChanged.connect(self._path_changed)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "ONNX model", str(Path.home()),
                                              "ONNX models (*.onnx);;All files (*)")
        if path:
            self.path.setText(path)

    def _path_changed(self, text: str) -> None:
        if text and not self.name.isModified():
            self.name.setText(Path(text).stem)

    def succeeded(self, result: ModelVersion) -> None:
        self.ctx.events.models_changed.emit()

    def submit(self) -> None:
        path, name = Path(self.path.text().strip()), self.name.text().strip()
        self.run(f"Import {path.name}", lambda c: registry.import_onnx(c.catalog, path, name))


class AliasDialog(TaskDialog):
    """Point an alias at a version. A flagged version is refused for production unless the
    user ticks Force after reading why."""

    def __init__(self, ctx: AppContext, version: ModelVersion,
                 parent: QWidget | None = None) -> None:
        super().__init__(ctx, f"Set an alias on {version.ref}", "Set alias", parent)
        self.version = version
        self.alias = QComboBox()
        self.alias.setObjectName("aliasName")
        self.alias.setEditable(True)
        self.alias.addItems(["production", "staging"])
        self.force = QCheckBox("Force: use this flagged version anyway")
        self.force.setObjectName("aliasForce")
        self.force.setVisible(False)
        self.form.addRow("Version", QLabel(f"{version.ref} — {parity_text(version)}"))
        self.form.addRow("Alias", self.alias)
        self.form.addRow("", self.force)

    def succeeded(self, result: ModelVersion) -> None:
        self.ctx.events.models_changed.emit()

    def submit(self) -> None:
        alias, force, ref = self.alias.currentText().strip(), self.force.isChecked(), \
            self.version.ref
        self.run(f"Alias {ref} as {alias}",
                 lambda c: registry.set_alias(c.catalog, ref, alias, force=force))

    def _failed(self, exc: Exception) -> bool:
        handled = super()._failed(exc)
        if handled and self.version.flagged:
            self.force.setVisible(True)  # the refusal names the reason; now offer the override
        return handled
