"""The Fleet view's capture dialog: which answered rows an agent keeps for a model
(`outpost agent capture`), with the policy in force shown first."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QDialogButtonBox, QLabel, QLineEdit, QWidget

from app import fleet_calls as calls
from app.context import AppContext
from app.dialogs.base import TaskDialog
from app.models.fleet import AgentRow, capture_text
from app.statusbar import say
from core.errors import OutpostError

if TYPE_CHECKING:
    from edge_agent.contract.status import ModelReport

# Kept from the policy in force when the form sets a new one: the form does not show them.
KEPT = ("drift_psi", "drift_min_rows", "drift_alerted")


def field_value(text: str) -> Any:
    """A form field for the core check: empty is None (the default), a number is a number,
    anything else goes as typed so the core refuses it with its own line."""
    text = text.strip()
    if not text:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class CaptureDialog(TaskDialog):
    inline_errors = (OutpostError,)  # bad values, an offline agent: fixed right here

    def __init__(self, ctx: AppContext, row: AgentRow, parent: QWidget | None = None) -> None:
        super().__init__(ctx, f"Sample capture on {row.name}", "Set", parent)
        self.agent_name = row.name
        self.hub = row.record.mode == "hub"
        self.reports: dict[str, ModelReport] = {
            str(m.get("name")): m for m in (row.status.models if row.status else [])}
        self.model = QComboBox()
        self.model.setObjectName("captureModel")
        self.model.addItems(sorted(self.reports))
        self.current = QLabel()
        self.current.setObjectName("captureCurrent")
        self.current.setWordWrap(True)
        self.share = QLineEdit()
        self.share.setObjectName("captureShare")
        self.share.setPlaceholderText("0 to 1, e.g. 0.1 keeps one row in ten")
        self.confidence = QLineEdit()
        self.confidence.setObjectName("captureConfidence")
        self.confidence.setPlaceholderText("empty: off; e.g. 0.6 (classifiers)")
        self.cap = QLineEdit()
        self.cap.setObjectName("captureCap")
        self.cap.setPlaceholderText("empty: no cap; counted per class and telemetry window")
        self.while_drift = QCheckBox("Capture every row while drift is alerted")
        self.while_drift.setObjectName("captureWhileDrift")
        self.form.addRow("Agent", QLabel(f"{row.name} ({row.record.mode} mode, {row.state})"))
        self.form.addRow("Model", self.model)
        self.form.addRow("In force", self.current)
        self.form.addRow("Random share", self.share)
        self.form.addRow("Confidence below", self.confidence)
        self.form.addRow("Per-class cap", self.cap)
        self.form.addRow("", self.while_drift)
        how = ("A hub agent takes it with its next poll." if self.hub else
               "The agent takes it now: it must be online.")
        note = QLabel("A row is kept for the first reason that applies: drift, confidence, "
                      f"random. {how} Clear goes back to the bundle's policy.")
        note.setObjectName("captureNote")
        note.setWordWrap(True)
        self.form.addRow("", note)
        self.clear_button = self.buttons.addButton("Clear", QDialogButtonBox.ButtonRole.ResetRole)
        self.clear_button.setObjectName("captureClear")
        self.clear_button.setAutoDefault(False)  # Return sets; it never clears
        self.clear_button.clicked.connect(self.clear)
        self.model.currentIndexChanged.connect(self._show)
        offline = row.status is not None and not row.status.online and not self.hub
        if offline:  # a hub agent is not called: its policy waits for its next poll
            self.error.setText(f"{row.name} is offline, so its capture policy cannot be set "
                               f"now: {row.status.error if row.status else 'no answer'}")
        elif not self.reports:
            self.error.setText(f"{row.name} serves no model yet: deploy one first.")
        usable = bool(self.reports) and not offline
        self.ok_button.setEnabled(usable)
        self.clear_button.setEnabled(usable)
        self._show()

    def _show(self) -> None:
        report = self.reports.get(self.model.currentText())
        self.current.setText(capture_text(report) if report else "")
        policy = (report or {}).get("capture") or {}
        share = policy.get("share")
        self.share.setText("" if not share else f"{share:g}")
        band = policy.get("confidence_below")
        self.confidence.setText("" if band is None else f"{band:g}")
        cap = policy.get("per_class_cap")
        self.cap.setText("" if cap is None else str(cap))
        self.while_drift.setChecked(bool(policy.get("while_drift")))

    def fields(self) -> dict[str, Any]:
        """The form as `capture_policy` keywords, with the drift settings it does not show
        kept from the policy in force."""
        policy = (self.reports.get(self.model.currentText()) or {}).get("capture") or {}
        fields = {k: policy.get(k) for k in KEPT}
        fields.update(share=field_value(self.share.text()),
                      confidence_below=field_value(self.confidence.text()),
                      per_class_cap=field_value(self.cap.text()),
                      while_drift=self.while_drift.isChecked())
        return fields

    def submit(self) -> None:
        self._send(self.fields())

    def clear(self) -> None:
        self._send(None)

    def _send(self, fields: dict[str, Any] | None) -> None:
        agent, model = self.agent_name, self.model.currentText()
        if not model:
            return
        what = "Clear" if fields is None else "Set"
        task = self.run(f"{what} capture of {model} on {agent}",
                        lambda c: calls.set_capture(c.catalog, agent, model, fields))
        self.clear_button.setEnabled(False)
        task.ended.connect(lambda _outcome: self.clear_button.setEnabled(True))

    def succeeded(self, result: dict[str, Any]) -> None:
        policy = result.get("policy")
        text = ("the bundle's again" if policy is None
                else capture_text({"capture": policy, "capture_from": "agent"}))
        when = (" — pending: the agent takes it with its next poll"
                if result.get("status") == "pending" else "")
        say(self.parentWidget() or self, f"Capture of {result.get('model')} on "
                                         f"{self.agent_name}: {text}{when}", 10000)
        self.ctx.events.agents_changed.emit()
