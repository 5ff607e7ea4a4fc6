"""Qt models for agents (with their live status), deployments and alerts."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.models.datasets import when
from app.models.records import Column, RecordTableModel, number
from edge_agent.contract.tls import short

if TYPE_CHECKING:
    from core.alerts import Alert  # noqa: F401 -- named in string type arguments below
    from core.fleet.ledger import Deployment  # noqa: F401
    from core.fleet.records import AgentRecord, AgentStatus

ONLINE, OFFLINE, UNKNOWN = "#1a7f37", "#cf222e", "#6e7781"
SEVERITY = {"alert": "#cf222e", "warn": "#b26b00"}


@dataclass(frozen=True)
class AgentRow:
    """An enrolled agent and, once polled, what it said."""

    record: AgentRecord
    status: AgentStatus | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def state(self) -> str:
        if self.status is None:
            return "checking…"
        return "online" if self.status.online else "offline"

    @property
    def pin_failed(self) -> bool:
        """The last call met another TLS certificate than the pinned one."""
        if self.status is not None:
            return self.status.pin_failed
        return self.record.pin_failed_at is not None

    def pin_text(self) -> str:
        if self.pin_failed:
            return "PIN FAILED"
        spki = self.record.tls_spki
        return short(spki) if spki else ("plain HTTP" if self.record.mode != "hub" else "")

    def served(self) -> str:
        if self.status is None:
            return ""
        return ", ".join(f"{m.get('name')}@{m.get('active')}" for m in self.status.models)


def policy_text(policy: Mapping[str, Any] | None) -> str:
    """A capture policy (CapturePolicy.to_dict) in words, reasons in the agent's order."""
    parts = []
    if policy and policy.get("while_drift"):
        parts.append(f"every row while drifting (PSI ≥ {policy.get('drift_psi', 0.25):g}, "
                     f"windows ≥ {policy.get('drift_min_rows', 50)} rows"
                     + (", alerted now)" if policy.get("drift_alerted") else ")"))
    if policy and policy.get("confidence_below") is not None:
        parts.append(f"confidence below {policy['confidence_below']:g}")
    if policy and policy.get("share"):
        parts.append(f"{float(policy['share']) * 100:g}% at random")
    if parts and policy and policy.get("per_class_cap") is not None:
        parts.append(f"at most {policy['per_class_cap']} per class and window")
    return ", ".join(parts) or "nothing"


def capture_text(report: Mapping[str, Any]) -> str:
    """What a model's status says about its capture policy, and where it comes from."""
    if "capture_from" not in report:
        return "not reported (an agent older than this desktop)"
    source = {"agent": "set on the agent", "bundle": "from the bundle"}.get(
        str(report.get("capture_from")), "none set")
    return f"{policy_text(report.get('capture'))} ({source})"


def _state_colour(row: AgentRow) -> str:
    return {"online": ONLINE, "offline": OFFLINE}.get(row.state, UNKNOWN)


def _error(row: AgentRow) -> str:
    if row.status is not None:
        return row.status.error or ""
    return row.record.last_error or ""


def _runtime(row: AgentRow) -> str:
    ort = row.status.runtime.get("onnxruntime") if row.status else None
    return f"onnxruntime {ort}" if ort else ""


class AgentsTableModel(RecordTableModel[AgentRow]):
    def __init__(self) -> None:
        super().__init__([
            Column("Agent", lambda r: r.name),
            Column("State", lambda r: r.state, colour=_state_colour, tip=_error),
            Column("Mode", lambda r: r.record.mode),
            Column("URL", lambda r: r.record.url),
            Column("Serving", AgentRow.served),
            Column("Telemetry rows", lambda r: r.status.telemetry_rows if r.status else None,
                   number, align_right=True),
            Column("Backlog", lambda r: r.status.backlog if r.status else None, number,
                   align_right=True),
            Column("Runtime", _runtime),
            Column("Last seen", lambda r: r.record.last_seen_at, when),
            Column("Error", _error, tip=_error),
            Column("TLS key", AgentRow.pin_text,
                   colour=lambda r: OFFLINE if r.pin_failed else None,
                   tip=lambda r: r.record.tls_spki or ""),
        ])

    def row_of(self, name: str) -> int | None:
        return next((i for i, r in enumerate(self.records) if r.name == name), None)

    def set_statuses(self, statuses: list[AgentStatus]) -> None:
        """Merge a poll into the rows without resetting the selection."""
        by_name = {s.agent: s for s in statuses}
        for i, row in enumerate(self.records):
            if row.name in by_name:
                self.records[i] = AgentRow(row.record, by_name[row.name])
        if self.records:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(self.records) - 1, len(self.columns) - 1))


class DeploymentsTableModel(RecordTableModel["Deployment"]):
    def __init__(self) -> None:
        super().__init__([
            Column("#", lambda d: d.id, align_right=True),
            Column("Action", lambda d: d.action),
            Column("Model", lambda d: f"{d.model}@{d.version}"),
            Column("Status", lambda d: d.status,
                   colour=lambda d: OFFLINE if d.status == "failed" else None),
            Column("Started", lambda d: d.started_at, when),
            Column("Error", lambda d: d.error or "", tip=lambda d: d.error),
        ])


class AlertsTableModel(RecordTableModel["Alert"]):
    def __init__(self) -> None:
        super().__init__([
            Column("Severity", lambda a: a.severity, colour=lambda a: SEVERITY.get(a.severity)),
            Column("Kind", lambda a: a.kind),
            Column("Message", lambda a: a.message, tip=lambda a: a.message),
            Column("Agent", lambda a: a.agent or ""),
            Column("Model", lambda a: a.model or ""),
            Column("Raised", lambda a: a.raised_at, when),
            Column("Cleared", lambda a: a.cleared_at, when),
        ])
