"""Dialogs of the Fleet view: add an agent, deploy (with the compatibility check), roll back,
save a bundle to a file."""
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

from app import fleet_calls as calls
from app.context import AppContext
from app.dialogs.base import TaskDialog
from app.models.registry import parity_text
from core import registry
from core.catalog import Catalog
from core.errors import OutpostError

if TYPE_CHECKING:
    from core.bundles import BuiltBundle
    from core.fleet.dispatch import Compatibility
    from core.fleet.ledger import DeployResult
    from core.fleet.records import AgentRecord
    from core.registry import ModelVersion


def all_model_versions(catalog: Catalog) -> list[ModelVersion]:
    """Every version of every model, newest first within a model."""
    found = []
    for model in registry.list_models(catalog):
        found += sorted(registry.list_versions(catalog, model["model"]),
                        key=lambda v: -v.version)
    return found


def version_label(version: ModelVersion) -> str:
    aliases = f" ({', '.join(version.aliases)})" if version.aliases else ""
    flagged = "  ⚠ flagged" if version.flagged else ""
    return f"{version.ref}{aliases}{flagged}"


class AddAgentDialog(TaskDialog):
    inline_errors = (OutpostError,)  # unreachable, wrong token, bad URL: all fixed right here

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Add an agent", "Add", parent)
        self.name = QLineEdit()
        self.name.setObjectName("agentName")
        self.url = QLineEdit("https://")
        self.url.setObjectName("agentUrl")
        self.token = QLineEdit()
        self.token.setObjectName("agentToken")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.form.addRow("Name", self.name)
        self.form.addRow("URL", self.url)
        self.form.addRow("Token", self.token)
        self.form.addRow("", QLabel("Outpost reaches the agent, checks the token and pins "
                                    "the agent's identity key."))

    def submit(self) -> None:
        name, url, token = self.name.text().strip(), self.url.text().strip(), self.token.text()
        self.run(f"Add agent {name}", lambda c: calls.add_agent(c.catalog, name, url, token))

    def succeeded(self, result: AgentRecord) -> None:
        self.ctx.events.agents_changed.emit()


class DeployDialog(TaskDialog):
    inline_errors = (OutpostError,)

    def __init__(self, ctx: AppContext, agents: list[str], agent: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Deploy a model", "Deploy", parent)
        self.version = QComboBox()
        self.version.setObjectName("deployVersion")
        self.agent = QComboBox()
        self.agent.setObjectName("deployAgent")
        self.agent.addItems(agents)
        if agent in agents:
            self.agent.setCurrentText(agent)
        self.parity = QLabel()
        self.parity.setWordWrap(True)
        self.compatibility = QLabel("Choose a model version and an agent.")
        self.compatibility.setObjectName("compatibility")
        self.compatibility.setWordWrap(True)
        self.force = QCheckBox("Force: deploy this flagged version anyway")
        self.force.setVisible(False)
        self.form.addRow("Model version", self.version)
        self.form.addRow("Agent", self.agent)
        self.form.addRow("Parity", self.parity)
        self.form.addRow("Compatibility", self.compatibility)
        self.form.addRow("", self.force)
        self.compatible: Compatibility | None = None
        self.ok_button.setEnabled(False)
        self.version.currentIndexChanged.connect(self._check)
        self.agent.currentIndexChanged.connect(self._check)
        ctx.tasks.run("List model versions", lambda c: all_model_versions(c.catalog),
                      self._listed, visible=False)

    def _listed(self, versions: list[ModelVersion]) -> None:
        self.version.blockSignals(True)
        for mv in versions:
            self.version.addItem(version_label(mv), mv)
        self.version.blockSignals(False)
        # Production is what usually goes out; otherwise the newest version.
        production = next((i for i, mv in enumerate(versions) if "production" in mv.aliases), 0)
        self.version.setCurrentIndex(production)
        if not versions:
            self.error.setText("No model versions yet: register one in Models first.")
        self._check()

    def selected(self) -> ModelVersion | None:
        mv: ModelVersion | None = self.version.currentData()
        return mv

    def _check(self) -> None:
        mv, agent = self.selected(), self.agent.currentText()
        self.compatible = None
        self.ok_button.setEnabled(False)
        if mv is None or not agent:
            return
        self.parity.setText(parity_text(mv))
        self.force.setVisible(mv.flagged)
        self.compatibility.setText(f"Checking {agent}…")
        ref = mv.ref
        self.ctx.tasks.run(f"Check {agent} can run {ref}",
                           lambda c: calls.check_compatibility(c.catalog, ref, agent),
                           self._checked, visible=False, key="compatibility")

    def _checked(self, result: Compatibility) -> None:
        self.compatible = result
        mark = "✓" if result.ok else "✗"
        self.compatibility.setText(f"{mark} {result.text}")
        self.compatibility.setObjectName("compatibility" if result.ok else "errorText")
        self.compatibility.style().unpolish(self.compatibility)
        self.compatibility.style().polish(self.compatibility)
        self.ok_button.setEnabled(result.ok)

    def submit(self) -> None:
        mv, agent, force = self.selected(), self.agent.currentText(), self.force.isChecked()
        if mv is None:
            return
        ref = mv.ref
        self.run(f"Deploy {ref} to {agent}",
                 lambda c: calls.deploy(c.catalog, ref, agent, force, c.progress, c.cancel))

    def succeeded(self, result: DeployResult) -> None:
        self.ctx.events.agents_changed.emit()


class RollbackDialog(TaskDialog):
    inline_errors = (OutpostError,)

    def __init__(self, ctx: AppContext, agent: str, models: list[str],
                 parent: QWidget | None = None) -> None:
        super().__init__(ctx, f"Roll back on {agent}", "Roll back", parent)
        self.agent_name = agent
        self.model = QComboBox()
        self.model.setObjectName("rollbackModel")
        self.model.setEditable(True)
        self.model.addItems(models)
        self.form.addRow("Agent", QLabel(agent))
        self.form.addRow("Model", self.model)
        self.form.addRow("", QLabel("The agent goes back to the version it served before."))

    def submit(self) -> None:
        model, agent = self.model.currentText().strip(), self.agent_name
        self.run(f"Roll back {model} on {agent}", lambda c: calls.rollback(c.catalog, model, agent))

    def succeeded(self, result: DeployResult) -> None:
        self.ctx.events.agents_changed.emit()


class BundleDialog(TaskDialog):
    """Write a signed bundle to a file, for a USB stick and an agent's inbox folder."""

    inline_errors = (OutpostError,)  # a missing folder or a full stick: pick another path

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Save a bundle to a file", "Save", parent)
        self.version = QComboBox()
        self.version.setObjectName("bundleVersion")
        self.path = QLineEdit()
        self.path.setObjectName("bundlePath")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.form.addRow("Model version", self.version)
        self.form.addRow("File", row)
        self.saved_to: str | None = None
        self.version.currentIndexChanged.connect(self._suggest)
        ctx.tasks.run("List model versions", lambda c: all_model_versions(c.catalog),
                      self._listed, visible=False)

    def _listed(self, versions: list[ModelVersion]) -> None:
        for mv in versions:
            self.version.addItem(version_label(mv), mv)

    def _suggest(self) -> None:
        mv: ModelVersion | None = self.version.currentData()
        if mv is not None:
            folder = Path(self.path.text()).parent if self.path.text() else Path.home()
            self.path.setText(str(folder / f"{mv.model}-{mv.version}.outpost"))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save bundle", self.path.text(),
                                              "Outpost bundles (*.outpost)")
        if path:
            self.path.setText(path)

    def submit(self) -> None:
        mv: ModelVersion | None = self.version.currentData()
        out = Path(self.path.text().strip())
        if mv is not None:
            ref = mv.ref
            self.run(f"Bundle {ref}",
                     lambda c: calls.save_bundle(c.catalog, ref, out, c.progress, c.cancel))

    def succeeded(self, result: BuiltBundle) -> None:
        self.saved_to = self.path.text()
