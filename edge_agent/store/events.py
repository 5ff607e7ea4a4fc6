"""The agent's audit events: numbered, stamped with this boot, signed, put in the outbox."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from edge_agent.contract.audit_events import AgentEvent, sign_event
from edge_agent.contract.errors import KeyFileError
from edge_agent.contract.signing import atomic_write
from edge_agent.store.identity import AgentIdentity

EVENT_SEQ_FILE = "event_seq.json"


class RecordSink(Protocol):
    def write(self, records: list[dict[str, Any]]) -> None: ...


class AgentEventLog:
    """Emits one signed event per store change. The event sequence lives in a small file
    written before the record, so a crash between the two leaves a gap, never a repeat."""

    def __init__(self, agent_dir: Path, identity: AgentIdentity, sink: RecordSink) -> None:
        self._path = Path(agent_dir) / EVENT_SEQ_FILE
        self._identity = identity
        self._sink = sink
        self._boot = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._seq = self._read_seq()

    def _read_seq(self) -> int:
        if not self._path.exists():
            return 0
        try:
            seq = json.loads(self._path.read_bytes())["last_seq"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{self._path} is unreadable: {exc}") from exc
        if not isinstance(seq, int) or seq < 0:
            raise KeyFileError(f"{self._path} has no valid last_seq")
        return seq

    def __call__(self, event: str, model: str, version: int, *, previous: int | None = None,
                 sha256: str | None = None) -> AgentEvent:
        with self._lock:
            seq = self._seq + 1
            atomic_write(self._path, json.dumps({"last_seq": seq}).encode() + b"\n")
            self._seq = seq
            record = AgentEvent(self._identity.agent_id, self._boot, seq, time.time(), event,
                                model, version, previous, sha256)
            self._sink.write([sign_event(record, self._identity.key)])
        return record
