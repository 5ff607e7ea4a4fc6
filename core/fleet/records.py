"""Enrolled agents as the catalog holds them, and their status as the fleet shows it.

A leaf: both delivery modes (push, :mod:`core.fleet.agents`; hub, :mod:`core.hub.contacts`)
build an :class:`AgentStatus` here from the status document the agent sent, so what
`agent status` shows is assembled once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

import orjson

from core.catalog import Catalog
from core.fleet.errors import AgentNotFound
from core.vault import agent_token
from edge_agent.contract.status import RUNTIME_KEYS, ModelReport, Runtime

Mode = Literal["push", "hub"]


@dataclass(frozen=True)
class AgentRecord:
    name: str
    url: str
    token: str
    agent_id: str
    public_key: str
    mode: Mode
    key_index: int
    key_counter: int
    added_at: datetime
    last_seen_at: datetime | None
    last_error: str | None
    tls_spki: str | None = None  # pinned certificate key (https agents)
    pin_failed_at: datetime | None = None  # the last call met another certificate


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


@dataclass(frozen=True)
class StatusReport:
    """The parts of an agent's status document (``GET /v1/status``, or the one it posts
    with each hub poll) the desktop reads. The document comes from a device: a field
    missing or of the wrong type reads as unknown, never as an error."""

    models: list[ModelReport] = field(default_factory=list)
    runtime: Runtime = field(default_factory=lambda: Runtime())
    opset_max: dict[str, int] = field(default_factory=dict)  # domain -> highest opset
    backlog: int | None = None  # records waiting in the agent's outbox
    key_rotation: int | None = None  # desktop key rotations the agent has applied
    poll_s: float | None = None  # a hub agent's poll interval
    # model -> why the agent did not take the capture policy the hub sent it
    capture_refused: dict[str, str] = field(default_factory=dict)

    @property
    def onnxruntime(self) -> str:
        return str(self.runtime.get("onnxruntime") or "?")

    @classmethod
    def from_doc(cls, doc: Any) -> StatusReport:
        doc = _dict(doc)
        poll_s = _dict(doc.get("hub")).get("poll_s")
        return cls(
            models=[ModelReport(**m) for m in doc.get("models") or [] if isinstance(m, dict)],
            runtime=cast(Runtime, {k: doc.get(k) for k in RUNTIME_KEYS}),
            opset_max={str(d): v for d, v in _dict(doc.get("opset_max")).items()
                       if type(v) is int},
            backlog=_int(_dict(doc.get("telemetry")).get("backlog")),
            key_rotation=_int(doc.get("key_rotation")),
            poll_s=float(poll_s) if isinstance(poll_s, int | float) and poll_s > 0 else None,
            capture_refused={str(m): str(why)[:500] for m, why
                             in _dict(doc.get("capture_refused")).items()})

    def serves(self, model: str) -> bool:
        return any(m.get("name") == model for m in self.models)


@dataclass(frozen=True)
class AgentStatus:
    agent: str
    online: bool
    mode: Mode
    url: str
    models: list[ModelReport]  # what the agent serves, as it last said
    telemetry_rows: int  # request records from this agent now in the catalog
    backlog: int | None  # records waiting in the agent's outbox
    runtime: Runtime
    error: str | None
    pin_failed: bool = False  # another TLS certificate answered at the agent's address
    # model -> rows this agent captured (sample capture) now in the catalog
    captured: dict[str, int] = field(default_factory=dict)
    # model -> why the agent refused the capture policy the hub sent it (not served there)
    capture_refused: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "online": self.online, "mode": self.mode,
                "models": self.models, "telemetry_rows": self.telemetry_rows, "url": self.url,
                "backlog": self.backlog, "runtime": self.runtime, "error": self.error,
                "pin_failed": self.pin_failed, "captured": self.captured,
                "capture_refused": self.capture_refused}


_FIELDS = ("name, url, token, agent_id, public_key, mode, key_index, key_counter, added_at, "
           "last_seen_at, last_error, tls_spki, pin_failed_at")


def _record(catalog: Catalog, row: tuple[Any, ...]) -> AgentRecord:
    """A row, with the token from the secrets file (the catalog holds none)."""
    return AgentRecord(row[0], row[1], agent_token(catalog.settings, row[0]), *row[3:])


def get_agent(catalog: Catalog, name: str) -> AgentRecord:
    rows = catalog.cursor().execute(f"SELECT {_FIELDS} FROM agent WHERE name = ?",
                                    [name]).fetchall()
    if not rows:
        raise AgentNotFound(name)
    return _record(catalog, rows[0])


def list_agents(catalog: Catalog) -> list[AgentRecord]:
    rows = catalog.cursor().execute(f"SELECT {_FIELDS} FROM agent ORDER BY name").fetchall()
    return [_record(catalog, row) for row in rows]


def telemetry_rows(catalog: Catalog, name: str) -> int:
    rows = catalog.cursor().execute(
        "SELECT count(*) FROM telemetry_request WHERE agent = ?", [name]).fetchall()
    return int(rows[0][0])


def captured_rows(catalog: Catalog, name: str) -> dict[str, int]:
    """Model -> captured rows of this agent stored in the catalog."""
    rows = catalog.cursor().execute(
        "SELECT model, count(*) FROM telemetry_capture WHERE agent = ? GROUP BY model "
        "ORDER BY model", [name]).fetchall()
    return {str(model): int(n) for model, n in rows}


def last_status(catalog: Catalog, name: str) -> StatusReport | None:
    """What the agent reported at its last contact (None: it never has)."""
    rows = catalog.cursor().execute("SELECT last_status FROM agent WHERE name = ?",
                                    [name]).fetchall()
    return StatusReport.from_doc(orjson.loads(rows[0][0])) if rows and rows[0][0] else None


def assemble_status(catalog: Catalog, record: AgentRecord, report: StatusReport | None, *,
                    online: bool, error: str | None, pin_failed: bool = False) -> AgentStatus:
    """The status `agent status` shows, from the agent's last report (None: no report)."""
    report = report or StatusReport.from_doc(None)
    return AgentStatus(
        agent=record.name, online=online, mode=record.mode, url=record.url,
        models=report.models, telemetry_rows=telemetry_rows(catalog, record.name),
        backlog=report.backlog, runtime=report.runtime, error=error, pin_failed=pin_failed,
        captured=captured_rows(catalog, record.name), capture_refused=report.capture_refused)
