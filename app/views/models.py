"""Models: registered models and their versions, aliases, the parity badge and the model card."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.context import AppContext
from app.dialogs.models import AliasDialog, ImportOnnxDialog, RegisterDialog
from app.models.registry import ModelsTableModel, ModelVersionsTableModel, parity_state, parity_text
from app.statusbar import say
from app.views.base import View
from app.views.datasets import record_table
from core import registry

if TYPE_CHECKING:
    from core.registry import ModelVersion

_BADGES = {"passed": "ok", "flagged": "bad", "not checked": "none"}


class ModelsView(View):
    title = "Models"
    icon_name = "models"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.action("Register…", "register", self.open_register, None,
                    "Export a trained run to ONNX as a new model version")
        self.action("Import ONNX…", "import", self.open_import, None,
                    "Register an .onnx file made elsewhere")
        self.export_action = self.action("Export…", "export", self.choose_export, None,
                                         "Save the version's .onnx file")
        self.alias_action = self.action("Set Alias…", "alias", self.open_alias, None,
                                        "Point production, staging or any alias at this version")
        self.action("Refresh", "refresh", self.refresh)

        self.models = ModelsTableModel()
        self.versions = ModelVersionsTableModel()
        self.models_table = record_table(self.models, "modelsTable")
        self.versions_table = record_table(self.versions, "modelVersionsTable")
        self.models_table.selectionModel().currentRowChanged.connect(self._model_selected)
        self.versions_table.selectionModel().currentRowChanged.connect(self._version_selected)

        self.heading = QLabel("Select a model version.")
        self.heading.setObjectName("sectionTitle")
        self.badge = QLabel()
        self.badge.setObjectName("parityBadge")
        header = QWidget()
        header_layout = QHBoxLayout(header)
        header_layout.setContentsMargins(0, 0, 0, 0)
        header_layout.addWidget(self.heading)
        header_layout.addWidget(self.badge)
        header_layout.addStretch(1)
        self.card = QTextBrowser()
        self.card.setObjectName("modelCard")
        self.card.setOpenExternalLinks(False)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.versions_table)
        card_box = QWidget()
        card_layout = QVBoxLayout(card_box)
        card_layout.setContentsMargins(0, 6, 0, 0)
        card_layout.addWidget(header)
        card_layout.addWidget(self.card, 1)
        right.addWidget(card_box)
        right.setSizes([220, 480])
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.models_table)
        self.splitter.addWidget(right)
        self.splitter.setSizes([330, 850])
        # A version the champion/challenger gate staged waits here for a person's approval.
        self.banner = QWidget()
        self.banner.setObjectName("stagedBanner")
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(0, 0, 0, 6)
        self.banner_text = QLabel()
        self.approve_button = QPushButton("Approve")
        self.approve_button.setObjectName("approveStaged")
        self.approve_button.clicked.connect(self.approve_staged)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(self.approve_button)
        self.banner.hide()
        self.staged: list[dict[str, Any]] = []
        self.body.addWidget(self.banner)
        self.body.addWidget(self.splitter)

        self.selected: ModelVersion | None = None
        self._want: tuple[str, int | None] | None = None
        self._update_actions()
        ctx.events.models_changed.connect(self.mark_stale)

    # --- lists -----------------------------------------------------------------------------
    def refresh(self) -> None:
        from core.registry.gate import staged_versions

        self.ctx.tasks.run("List models", lambda c: registry.list_models(c.catalog), self._listed,
                           visible=False, key="models")
        self.ctx.tasks.run("Staged versions", lambda c: staged_versions(c.catalog),
                           self._staged_listed, visible=False, key="models-staged")

    def _staged_listed(self, staged: list[dict[str, Any]]) -> None:
        self.staged = staged
        if staged:
            refs = ", ".join(f"{s['model']}@{s['version']}" for s in staged)
            self.banner_text.setText(f"Staged, waiting for approval: {refs} — it beat "
                                     "production on the holdout (outpost approve M@V)")
        self.banner.setVisible(bool(staged))

    def approve_staged(self) -> None:
        """Approve the first staged version: it becomes production (CLI: outpost approve)."""
        from core.registry.gate import approve

        if not self.staged:
            return
        ref = f"{self.staged[0]['model']}@{self.staged[0]['version']}"
        self.ctx.tasks.run(f"Approve {ref}", lambda c: approve(c.catalog, ref),
                           self._approved, key="approve")

    def _approved(self, doc: dict[str, Any]) -> None:
        say(self, f"{doc['model']}@{doc['version']} is now production")
        self.ctx.events.models_changed.emit()
        self.refresh()

    def _listed(self, models: list[dict[str, Any]]) -> None:
        keep = self._want[0] if self._want else (self.selected.model if self.selected else None)
        self.models.set_records(models)
        row = self.models.row_of(keep) if keep else None
        if models:
            self.models_table.selectRow(row if row is not None else 0)
        else:
            self._show(None)

    def select(self, model: str, version: int | None = None) -> None:
        self._want = (model, version)
        self.refresh()

    def _model_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            name = self.models.record(current.row())["model"]
            self.ctx.tasks.run(f"Versions of {name}",
                               lambda c: registry.list_versions(c.catalog, name),
                               self._versions_listed, visible=False, key="model-versions")

    def _versions_listed(self, versions: list[ModelVersion]) -> None:
        want = self._want[1] if self._want else (self.selected.version if self.selected else None)
        self._want = None
        versions = sorted(versions, key=lambda v: -v.version)
        self.versions.set_records(versions)
        row = self.versions.row_of(want) if want is not None else None
        if versions:
            self.versions_table.selectRow(row if row is not None else 0)

    def _version_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self._show(self.versions.record(current.row()))

    def _show(self, version: ModelVersion | None) -> None:
        self.selected = version
        self._update_actions()
        if version is None:
            self.heading.setText("No models yet: register a run or import an ONNX file.")
            self.badge.hide()
            self.card.clear()
            return
        aliases = f"  ({', '.join(version.aliases)})" if version.aliases else ""
        self.heading.setText(f"{version.ref}{aliases}")
        self.badge.setText(parity_text(version))
        self.badge.setProperty("badge", _BADGES[parity_state(version)])
        self.badge.style().unpolish(self.badge)
        self.badge.style().polish(self.badge)
        self.badge.show()
        ref = version.ref
        self.ctx.tasks.run(f"Model card of {ref}", lambda c: registry.model_card(c.catalog, ref),
                           self._card, visible=False, key="card")

    def _card(self, markdown: str) -> None:
        self.card.setMarkdown(markdown)

    def _update_actions(self) -> None:
        for act in (self.export_action, self.alias_action):
            act.setEnabled(self.selected is not None)

    # --- actions ---------------------------------------------------------------------------
    def open_register(self) -> RegisterDialog:
        dialog = RegisterDialog(self.ctx, self)
        dialog.accepted.connect(lambda: self._select_result(dialog.result_value))
        dialog.open()
        return dialog

    def open_import(self) -> ImportOnnxDialog:
        dialog = ImportOnnxDialog(self.ctx, self)
        dialog.accepted.connect(lambda: self._select_result(dialog.result_value))
        dialog.open()
        return dialog

    def open_alias(self) -> AliasDialog | None:
        if self.selected is None:
            return None
        dialog = AliasDialog(self.ctx, self.selected, self)
        dialog.accepted.connect(lambda: self._select_result(dialog.result_value))
        dialog.open()
        return dialog

    def _select_result(self, version: ModelVersion | None) -> None:
        if version is not None:
            self._want = (version.model, version.version)

    def choose_export(self) -> None:
        if self.selected is None:
            return
        default = Path.home() / f"{self.selected.model}-{self.selected.version}.onnx"
        path, _ = QFileDialog.getSaveFileName(self, "Export ONNX model", str(default),
                                              "ONNX models (*.onnx)")
        if path:
            self.export(Path(path))

    def export(self, path: Path) -> None:
        if self.selected is None:
            return
        ref = self.selected.ref
        # The save dialog has already asked before replacing a file.
        self.ctx.tasks.run(f"Export {ref}",
                           lambda c: registry.export_model(c.catalog, ref, path, force=True),
                           lambda v: say(self, f"Exported {v.version.ref} to {path}"))

    # --- state -----------------------------------------------------------------------------
    def save_state(self) -> dict[str, object]:
        return {"splitter": self.splitter.saveState()}

    def restore_state(self, state: dict[str, object]) -> None:
        if state.get("splitter") is not None:
            self.splitter.restoreState(state["splitter"])  # type: ignore[arg-type]
