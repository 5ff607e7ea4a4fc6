"""Fleet: enrolled agents with live status polled in the background, the local agent,
deploy and roll back, bundles to files, telemetry files from offline sites."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import QFileDialog, QLabel, QSplitter, QVBoxLayout, QWidget

from app import fleet_calls as calls
from app.context import AppContext
from app.dialogs.fleet import AddAgentDialog, BundleDialog, DeployDialog, RollbackDialog
from app.models.fleet import AgentRow, AgentsTableModel, DeploymentsTableModel
from app.views.base import View
from app.views.datasets import record_table

if TYPE_CHECKING:
    from core.fleet.agents import AgentRecord, AgentStatus
    from core.fleet.deploy import Deployment
    from core.fleet.local import LocalAgent
    from core.telemetry.ingest import IngestResult

POLL_MS = 5000


def runtime_text(runtime: dict[str, Any]) -> str:
    """The agent's self-description in one readable line."""
    parts = []
    if runtime.get("version"):
        parts.append(f"agent {runtime['version']}")
    if runtime.get("python"):
        parts.append(f"Python {runtime['python']}")
    if runtime.get("onnxruntime"):
        parts.append(f"onnxruntime {runtime['onnxruntime']}")
    opsets = runtime.get("opset_max") or {}
    if opsets:
        parts.append("opsets " + ", ".join(f"{d or 'ai.onnx'} ≤ {v}"
                                           for d, v in sorted(opsets.items())))
    if runtime.get("uptime_s") is not None:
        parts.append(f"up {float(runtime['uptime_s']):,.0f} s")
    if runtime.get("disk_free_bytes") is not None:
        parts.append(f"{float(runtime['disk_free_bytes']) / 1e9:,.1f} GB free")
    return " · ".join(parts) or "unknown"


class FleetView(View):
    title = "Fleet"
    icon_name = "fleet"

    def __init__(self, ctx: AppContext, poll_ms: int = POLL_MS) -> None:
        super().__init__(ctx)
        self.action("Add Agent…", "add", self.open_add, None, "Enrol an agent by URL and token")
        self.start_action = self.action("Start Local", "play", self.start_local, None,
                                        "Start the agent on this machine (loopback)")
        self.stop_action = self.action("Stop Local", "stop", self.stop_local, None,
                                       "Stop the agent on this machine")
        self.deploy_action = self.action("Deploy…", "deploy", self.open_deploy, "Ctrl+D",
                                         "Push a model version to an agent")
        self.rollback_action = self.action("Roll Back…", "rollback", self.open_rollback, None,
                                           "Serve the previous version again")
        self.action("Save Bundle…", "bundle", self.open_bundle, None,
                    "Write a signed bundle file for a USB stick")
        self.action("Import Telemetry…", "telemetry", self.choose_telemetry, None,
                    "Read a telemetry file exported by an offline agent")
        self.action("Refresh", "refresh", self.refresh)

        self.agents = AgentsTableModel()
        self.table = record_table(self.agents, "agentsTable")
        self.table.selectionModel().currentRowChanged.connect(self._agent_selected)
        self.deployments = DeploymentsTableModel()
        self.history = record_table(self.deployments, "deploymentsTable")
        self.detail = QLabel("Select an agent.")
        self.detail.setObjectName("agentDetail")
        self.detail.setWordWrap(True)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 6, 0, 0)
        lower_layout.addWidget(self.detail)
        title = QLabel("Deployments")
        title.setObjectName("sectionTitle")
        lower_layout.addWidget(title)
        lower_layout.addWidget(self.history, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(lower)
        self.splitter.setSizes([300, 400])
        self.body.addWidget(self.splitter)

        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.polls = 0
        # Telemetry window of a local agent started here (None: the agent's default, 60 s).
        self.local_window_s: float | None = None
        self._update_actions()
        ctx.events.agents_changed.connect(self.mark_stale)

    # --- agents and their status -------------------------------------------------------------
    def refresh(self) -> None:
        self.ctx.tasks.run("List agents", lambda c: calls.list_agents(c.catalog), self._listed,
                           visible=False, key="agents")

    def _listed(self, records: list[AgentRecord]) -> None:
        keep = self.selected_name()
        old = {r.name: r.status for r in self.agents.records}
        self.agents.set_records([AgentRow(r, old.get(r.name)) for r in records])
        row = self.agents.row_of(keep) if keep else None
        if records:
            self.table.selectRow(row if row is not None else 0)
        else:
            self.deployments.set_records([])
        self._update_actions()
        self._show_detail()
        self.poll()

    def poll(self) -> None:
        """Ask every agent how it is; the answers merge into the table when they come."""
        if self.agents.records:
            self.ctx.tasks.run("Poll agents", lambda c: calls.fleet_status(c.catalog), self._polled,
                               visible=False, key="poll")

    def _polled(self, statuses: list[AgentStatus]) -> None:
        self.polls += 1
        self.agents.set_statuses(statuses)
        self._show_detail()

    def selected_name(self) -> str | None:
        row = self.selected_row()
        return row.name if row else None

    def selected_row(self) -> AgentRow | None:
        index = self.table.currentIndex()
        if not index.isValid() or index.row() >= len(self.agents.records):
            return None
        return self.agents.record(index.row())

    def _agent_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_actions()
        self._show_detail()
        name = self.selected_name()
        if name:
            self.ctx.tasks.run(f"Deployments to {name}",
                               lambda c: calls.list_deployments(c.catalog, name),
                               self._deployments, visible=False, key="deployments")

    def _deployments(self, rows: list[Deployment]) -> None:
        self.deployments.set_records(rows)

    def _show_detail(self) -> None:
        row = self.selected_row()
        if row is None:
            self.detail.setText("No agents yet: start the local agent, or add one by URL.")
            return
        status = row.status
        lines = [f"<b>{row.name}</b> — {row.state}, {row.record.mode} mode, {row.record.url}"]
        if status is not None:
            lines.append(f"Runtime: {runtime_text(status.runtime)}")
            lines.append(f"Serving: {row.served() or 'nothing yet'}")
            if status.error:
                lines.append(f"<span style='color:#cf222e'>{status.error}</span>")
        self.detail.setText("<br>".join(lines))

    def _update_actions(self) -> None:
        has = self.selected_row() is not None
        self.deploy_action.setEnabled(bool(self.agents.records))
        self.rollback_action.setEnabled(has)

    # --- the local agent ---------------------------------------------------------------------
    def start_local(self) -> None:
        window = self.local_window_s
        self.ctx.tasks.run("Start local agent",
                           lambda c: calls.start_local_agent(c.catalog, window),
                           self._local_started)

    def _local_started(self, agent: LocalAgent) -> None:
        state = "started" if agent.started else "already running"
        self.window().statusBar().showMessage(f"Local agent {state} at {agent.url}", 8000)
        self.ctx.events.agents_changed.emit()

    def stop_local(self) -> None:
        self.ctx.tasks.run("Stop local agent", lambda c: calls.stop_local_agent(c.catalog),
                           self._local_stopped)

    def _local_stopped(self, stopped: bool) -> None:
        self.window().statusBar().showMessage(
            "Local agent stopped" if stopped else "The local agent was not running", 8000)
        self.poll()

    # --- dialogs -----------------------------------------------------------------------------
    def open_add(self) -> AddAgentDialog:
        dialog = AddAgentDialog(self.ctx, self)
        dialog.open()
        return dialog

    def open_deploy(self) -> DeployDialog:
        names = [r.name for r in self.agents.records]
        dialog = DeployDialog(self.ctx, names, self.selected_name(), self)
        dialog.open()
        return dialog

    def open_rollback(self) -> RollbackDialog | None:
        row = self.selected_row()
        if row is None:
            return None
        models = [str(m.get("name")) for m in (row.status.models if row.status else [])]
        dialog = RollbackDialog(self.ctx, row.name, models, self)
        dialog.open()
        return dialog

    def open_bundle(self) -> BundleDialog:
        dialog = BundleDialog(self.ctx, self)
        dialog.accepted.connect(lambda: self.window().statusBar().showMessage(
            f"Bundle saved to {dialog.saved_to}", 8000))
        dialog.open()
        return dialog

    def choose_telemetry(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import telemetry", str(Path.home()),
                                              "Telemetry exports (*.jsonl *.ndjson *.gz *.*)")
        if path:
            self.import_telemetry_file(Path(path))

    def import_telemetry_file(self, path: Path) -> None:
        self.ctx.tasks.run(f"Import telemetry {path.name}",
                           lambda c: calls.import_telemetry(c.catalog, path),
                           self._telemetry_imported)

    def _telemetry_imported(self, result: IngestResult) -> None:
        self.window().statusBar().showMessage(
            f"Imported {result.requests:,} requests and {result.histograms:,} histogram windows "
            f"from {result.agent}", 8000)
        self.ctx.events.telemetry_changed.emit()
        self.refresh()

    # --- polling only while visible ----------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self.timer.start()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 (Qt override)
        super().hideEvent(event)
        self.timer.stop()

    def save_state(self) -> dict[str, object]:
        return {"splitter": self.splitter.saveState()}

    def restore_state(self, state: dict[str, object]) -> None:
        if state.get("splitter") is not None:
            self.splitter.restoreState(state["splitter"])  # type: ignore[arg-type]
