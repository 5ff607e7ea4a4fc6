"""Fleet: enrolled agents with live status polled in the background, the local agent,
deploy and roll back, bundles to files, telemetry files from offline sites, and the hub
that hub-mode agents (behind NAT) poll, with their enrolment."""
from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import fleet_calls as calls
from app.context import AppContext
from app.dialogs.capture import CaptureDialog
from app.dialogs.fleet import AddAgentDialog, BundleDialog, DeployDialog, RollbackDialog
from app.hub_control import DEFAULT_HOST, HubControl, enrol_for_hub, hub_url
from app.models.fleet import AgentRow, AgentsTableModel, DeploymentsTableModel, capture_text
from app.statusbar import say
from app.views.base import View
from app.views.datasets import record_table
from core.catalog import Catalog

if TYPE_CHECKING:
    from core.fleet.ledger import Deployment
    from core.fleet.local import LocalAgent
    from core.fleet.records import AgentRecord, AgentStatus
    from core.hub import HubHandle
    from core.telemetry.ingest import IngestResult
    from edge_agent.contract.hub_protocol import Enrolment
    from edge_agent.contract.status import Runtime

POLL_MS = 5000
HUB_PORT = 8700  # core.hub.DEFAULT_PORT, without importing uvicorn before the hub starts


def runtime_text(runtime: Runtime) -> str:
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
    if (uptime := runtime.get("uptime_s")) is not None:
        parts.append(f"up {float(uptime):,.0f} s")
    if (free := runtime.get("disk_free_bytes")) is not None:
        parts.append(f"{float(free) / 1e9:,.1f} GB free")
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
        self.capture_action = self.action("Capture…", "datasets", self.open_capture, None,
                                          "Which answered rows the agent keeps per model "
                                          "(sample capture)")
        self.hub_action = self.action("Hub", "fleet", self.toggle_hub, None,
                                      "Start or stop the hub that hub-mode agents poll")
        self.hub_action.setCheckable(True)
        # Devices without a link: one menu button, so the toolbar fits a 1400 px window
        # (ten buttons side by side overflowed it). The Fleet menu lists them too.
        self.offline_actions = [
            self.action("Save Bundle…", "bundle", self.open_bundle, None,
                        "Write a signed bundle file for a USB stick", toolbar=False),
            self.action("Import Telemetry…", "telemetry", self.choose_telemetry, None,
                        "Read a telemetry file exported by an offline agent", toolbar=False),
            self.action("Enrol for Hub…", "agent", self.choose_enrolment, None,
                        "Write a one-time enrolment file for a device that polls the hub",
                        toolbar=False)]
        self.menu_button("USB && Hub", "bundle", self.offline_actions,
                         "Bundles and telemetry files for devices without a link, and "
                         "enrolment files for hub-mode devices")
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
        self.body.addLayout(self._hub_row())
        self.body.addWidget(self.splitter)

        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        # Telemetry window of a local agent started here (None: the agent's default, 60 s).
        self.local_window_s: float | None = None
        self._update_actions()
        ctx.events.agents_changed.connect(self.mark_stale)

    def _hub_row(self) -> QHBoxLayout:
        self.hub = HubControl(self.ctx.catalog)
        self.hub_host = QLineEdit(DEFAULT_HOST)
        self.hub_host.setObjectName("hubHost")
        self.hub_host.setMaximumWidth(160)
        self.hub_port = QSpinBox()
        self.hub_port.setObjectName("hubPort")
        self.hub_port.setRange(0, 65535)
        self.hub_port.setValue(HUB_PORT)
        self.hub_state = QLabel("Hub stopped")
        self.hub_state.setObjectName("hubState")
        self.hub_state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Shown in the status bar beside the running tasks while the hub serves.
        self.hub_badge = QLabel()
        self.hub_badge.setObjectName("hubBadge")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 6)
        for widget in (QLabel("Hub on"), self.hub_host, QLabel(":"), self.hub_port,
                       self.hub_state):
            row.addWidget(widget)
        row.addStretch(1)
        return row

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
        if row.record.tls_spki:
            lines.append(f"TLS certificate key pinned: {row.record.tls_spki}")
        if row.pin_failed:
            lines.append("<span style='background:#cf222e;color:white'>&nbsp;PIN FAILED&nbsp;"
                         "</span> another certificate answered at this address; nothing was "
                         "sent to it (re-enrol only if the device was replaced)")
        if status is not None:
            lines.append(f"Runtime: {runtime_text(status.runtime)}")
            lines.append(f"Serving: {row.served() or 'nothing yet'}")
            lines += [f"Capture of {escape(str(m.get('name')))}: {escape(capture_text(m))} — "
                      f"{status.captured.get(str(m.get('name')), 0):,} captured rows in the "
                      "catalog" for m in status.models]
            lines += [f"<span style='color:#cf222e'>Capture of {escape(model)} refused by the "
                      f"agent: {escape(why)}</span>"
                      for model, why in sorted(status.capture_refused.items())]
            if status.error:
                lines.append(f"<span style='color:#cf222e'>{status.error}</span>")
        self.detail.setText("<br>".join(lines))

    def _update_actions(self) -> None:
        has = self.selected_row() is not None
        self.deploy_action.setEnabled(bool(self.agents.records))
        self.rollback_action.setEnabled(has)
        self.capture_action.setEnabled(has)

    # --- the local agent ---------------------------------------------------------------------
    def start_local(self) -> None:
        window = self.local_window_s
        self.ctx.tasks.run("Start local agent",
                           lambda c: calls.start_local_agent(c.catalog, window),
                           self._local_started)

    def _local_started(self, agent: LocalAgent) -> None:
        state = "started" if agent.started else "already running"
        self._say(f"Local agent {state} at {agent.url}", 8000)
        self.ctx.events.agents_changed.emit()

    def stop_local(self) -> None:
        self.ctx.tasks.run("Stop local agent", lambda c: calls.stop_local_agent(c.catalog),
                           self._local_stopped)

    def _local_stopped(self, stopped: bool) -> None:
        self._say(
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

    def open_capture(self) -> CaptureDialog | None:
        row = self.selected_row()
        if row is None:
            return None
        dialog = CaptureDialog(self.ctx, row, self)
        dialog.open()
        return dialog

    def open_bundle(self) -> BundleDialog:
        dialog = BundleDialog(self.ctx, self)
        dialog.accepted.connect(lambda: self._say(
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
                           lambda c: calls.import_telemetry(c.catalog, path, c.progress,
                                                            c.cancel),
                           self._telemetry_imported)

    def _telemetry_imported(self, done: tuple[IngestResult, list[str]]) -> None:
        result, policy = done
        self._say(
            f"Imported {result.requests:,} requests and {result.histograms:,} histogram windows "
            f"from {result.agent}" + "".join(f" — {line}" for line in policy), 8000)
        self.ctx.events.telemetry_changed.emit()
        self.refresh()

    # --- the hub --------------------------------------------------------------------------------
    def toggle_hub(self, checked: bool) -> None:
        if checked:
            self.start_hub()
        else:
            self.stop_hub()

    def start_hub(self) -> None:
        host, port = self.hub_host.text().strip() or DEFAULT_HOST, self.hub_port.value()
        # The hub's own connection, made here: DuckDB cursors come from the owning connection.
        own = Catalog(self.ctx.catalog.settings, self.ctx.catalog.con.cursor())
        self._show_hub(f"Hub starting on {host}:{port}…", busy=True)
        self.ctx.tasks.run("Start hub", lambda c: self.hub.start(own, host, port),
                           self._hub_started, on_error=self._hub_failed)

    def _hub_started(self, handle: HubHandle) -> None:
        self._show_hub(f"Hub serving on {handle.url}", busy=False)
        self._say(f"Hub serving on {handle.url}", 8000)

    def _hub_failed(self, _exc: Exception) -> bool:
        self._show_hub("Hub stopped", busy=False)
        return False  # the sink shows the one-line reason (port in use, say)

    def stop_hub(self) -> None:
        self._show_hub("Hub stopping…", busy=True)
        self.ctx.tasks.run("Stop hub", lambda c: self.hub.stop(), self._hub_stopped,
                           on_error=self._hub_failed)

    def _hub_stopped(self, _was_running: bool) -> None:
        self._show_hub("Hub stopped", busy=False)
        self._say("Hub stopped", 8000)

    def _say(self, text: str, ms: int) -> None:
        say(self, text, ms)

    def _show_hub(self, text: str, *, busy: bool) -> None:
        running = self.hub.running
        self.hub_state.setText(text)
        self.hub_action.setChecked(running or (busy and self.hub_action.isChecked()))
        self.hub_action.setEnabled(not busy)
        self.hub_host.setEnabled(not running and not busy)
        self.hub_port.setEnabled(not running and not busy)
        handle = self.hub.handle
        self.hub_badge.setText(f"Hub: {handle.url}" if running and handle else "")
        self.hub_badge.setToolTip(text)
        window = self.window()
        if running and isinstance(window, QMainWindow):
            if self.hub_badge.parent() is not window.statusBar():
                window.statusBar().insertPermanentWidget(0, self.hub_badge)
            self.hub_badge.show()
        else:
            self.hub_badge.hide()

    def choose_enrolment(self) -> None:
        name, ok = QInputDialog.getText(self, "Enrol for hub", "Agent name:")
        if not ok or not name.strip():
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save enrolment file", str(Path.home() / f"{name.strip()}.enrol"),
            "Enrolment files (*.enrol *.json);;All files (*)")
        if path:
            self.enrol_for_hub(name.strip(), Path(path))

    def enrol_for_hub(self, name: str, path: Path) -> None:
        url = hub_url(self.hub_host.text().strip(), self.hub_port.value(), self.hub.handle)
        self.ctx.tasks.run(f"Enrol {name} for the hub",
                           lambda c: enrol_for_hub(c.catalog, name, url, path),
                           lambda e: self._enrolled(e, path))

    def _enrolled(self, enrolment: Enrolment, path: Path) -> None:
        self._say(
            f"Enrolment for {enrolment.agent} saved to {path}: start the device with "
            "outpost-agent serve --dir DIR --enroll FILE (the token is in that file only)",
            12000)
        self.ctx.events.agents_changed.emit()

    # --- polling only while visible ----------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self.timer.start()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 (Qt override)
        super().hideEvent(event)
        self.timer.stop()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        # The window closes its views after the task pool drained: a hub started (or still
        # starting) from here drains its requests and commits what it holds before quit.
        self.hub.stop()
        super().closeEvent(event)

    def save_state(self) -> dict[str, object]:
        return {"splitter": self.splitter.saveState(), "hub_host": self.hub_host.text(),
                "hub_port": self.hub_port.value()}

    def restore_state(self, state: dict[str, object]) -> None:
        if state.get("splitter") is not None:
            self.splitter.restoreState(state["splitter"])  # type: ignore[arg-type]
        if isinstance(state.get("hub_host"), str) and state["hub_host"]:
            self.hub_host.setText(str(state["hub_host"]))
        port = str(state.get("hub_port", HUB_PORT))  # QSettings may hand back a string
        if port.isdigit():
            self.hub_port.setValue(int(port))
