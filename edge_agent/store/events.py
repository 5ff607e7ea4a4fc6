"""The agent's audit events: numbered, stamped with this boot, signed, put in the outbox."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.contract.audit_events import AgentEvent, sign_event
from edge_agent.store.identity import AgentIdentity

COUNTER = "agent_event"


class CountedSink(Protocol):
    def write_counted(self, counter: str,
                      make: Callable[[int], list[dict[str, Any]]]) -> None: ...


class AgentEventLog:
    """Emits one signed event per store change. The event's sequence number is taken in
    the outbox transaction that stores it (edge_agent.telemetry.outbox), so it is gapless
    and never repeats, across restarts too; the boot id tells the processes apart."""

    def __init__(self, identity: AgentIdentity, sink: CountedSink) -> None:
        self._identity = identity
        self._sink = sink
        self._boot = str(uuid.uuid4())

    def __call__(self, event: str, model: str, version: int, *, previous: int | None = None,
                 sha256: str | None = None) -> AgentEvent:
        made: list[AgentEvent] = []

        def make(seq: int) -> list[dict[str, Any]]:
            made[:] = [AgentEvent(self._identity.agent_id, self._boot, seq, time.time(), event,
                                  model, version, previous, sha256)]
            return [sign_event(made[0], self._identity)]

        self._sink.write_counted(COUNTER, make)
        return made[0]
