"""When each hub agent last called and what it reported; its health as `agent status` shows it.

A poll must not cost a catalog write: the hub keeps the latest contact per agent in
memory and its writer stores them all in one statement every couple of seconds. A hub
agent is online while it keeps polling; one silent for three poll intervals (at least
30 s more than one) raises the same 'unreachable' health alert as a push agent would.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from core.alerts import Condition, sync_alerts
from core.catalog import Catalog
from core.fleet.records import AgentRecord, AgentStatus, StatusReport, assemble_status, last_status
from edge_agent.contract.hub_protocol import DEFAULT_POLL_S


@dataclass(frozen=True)
class Contact:
    seen_at: datetime
    status: bytes  # the agent's status document, JSON
    key_index: int | None  # desktop key rotation the agent trusts, if known
    key_counter: int | None  # rotations the agent has applied


class ContactBook:
    """Latest contact per agent, waiting for the writer. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Contact] = {}

    def seen(self, agent: str, contact: Contact) -> None:
        with self._lock:
            self._pending[agent] = contact

    def flush(self, catalog: Catalog) -> int:
        """Store every waiting contact in one transaction; clear their unreachable alerts."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        import pyarrow as pa  # here: `agent status` and `deploy` read contacts without it

        staged = pa.table({
            "name": list(pending), "seen_at": [c.seen_at for c in pending.values()],
            "status": [c.status.decode() for c in pending.values()],
            "key_index": pa.array([c.key_index for c in pending.values()], pa.int32()),
            "key_counter": pa.array([c.key_counter for c in pending.values()], pa.int32())})
        try:
            with catalog.transaction() as cur:
                cur.register("contacts", staged)
                cur.execute(
                    "UPDATE agent SET last_seen_at = c.seen_at, last_error = NULL, "
                    "last_status = CAST(c.status AS JSON), "
                    "key_index = coalesce(c.key_index, agent.key_index), "
                    "key_counter = coalesce(c.key_counter, agent.key_counter) "
                    "FROM contacts c WHERE agent.name = c.name AND agent.mode = 'hub'")
                cur.execute(
                    "UPDATE alert SET cleared_at = now(), updated_at = now() "
                    "WHERE cleared_at IS NULL AND kind = 'health' AND key IN "
                    "(SELECT 'health/' || name || '/unreachable' FROM contacts)")
                cur.unregister("contacts")
        except BaseException:
            with self._lock:  # newer contacts win; older ones come back for the next try
                self._pending = {**pending, **self._pending}
            raise
        return len(pending)


def silence_limit(report: StatusReport | None) -> float:
    poll_s = (report.poll_s if report else None) or DEFAULT_POLL_S
    return max(3 * poll_s, poll_s + 30.0)


def hub_agent_status(catalog: Catalog, record: AgentRecord) -> AgentStatus:
    """A hub agent's status from its last poll: the desktop cannot call it."""
    report = last_status(catalog, record.name)
    error: str | None = None
    if record.last_seen_at is None:
        error = "has not called the hub yet"
    else:
        age = (datetime.now(UTC) - record.last_seen_at).total_seconds()
        if age > silence_limit(report):
            error = f"no call to the hub for {age:.0f} s"
    holding = [] if error is None or record.last_seen_at is None else [Condition(
        f"health/{record.name}/unreachable", "health", "alert",
        f"agent {record.name} is unreachable: {error}", agent=record.name)]
    with catalog.transaction() as cur:
        sync_alerts(cur, f"health/{record.name}/unreachable", holding)
    return assemble_status(catalog, record, report, online=error is None, error=error)
