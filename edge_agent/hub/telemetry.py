"""Pushing the telemetry outbox to the hub: oldest records first, deleted only once acked.

The hub commits a batch exactly once by (agent, seq) and answers with the highest seq
it holds for this agent; only records up to that seq leave the outbox. So a hub that
is away, restarted, or answers too late costs a repeat, never a loss: the outbox keeps
everything (up to its cap, whose evictions travel as `evicted` records). A batch the
hub refuses stays in the outbox and the reason goes to the log; one refused as too
large is split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from edge_agent.contract.hub_protocol import agent_path
from edge_agent.hub.transport import HubRefused, HubTransport

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"


@dataclass
class PushResult:
    sent: int  # records in the batch
    acked: int  # the hub's highest committed seq for this agent
    more: bool  # the outbox held more than one batch


class TelemetryPusher:
    def __init__(self, agent: str, outbox: Any, *, batch_records: int = 5000,
                 batch_bytes: int = 4 * 1024 * 1024,
                 cut_windows: Callable[[], object] | None = None) -> None:
        self.agent = agent
        self.outbox = outbox
        self.cut_windows = cut_windows  # closes open histogram windows before a push
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes

    def _batch(self) -> tuple[bytes, int, int, int, bool]:
        """NDJSON of the oldest records within both limits: (body, count, first seq,
        last seq, more)."""
        records = self.outbox.read(0, self.batch_records)
        lines: list[bytes] = []
        size = 0
        for record in records:
            line = orjson.dumps(record) + b"\n"
            if lines and size + len(line) > self.batch_bytes:
                break
            lines.append(line)
            size += len(line)
        more = len(lines) < len(records) or len(records) == self.batch_records
        first = int(records[0]["seq"]) if lines else 0
        last = int(records[len(lines) - 1]["seq"]) if lines else 0
        return b"".join(lines), len(lines), first, last, more

    def push(self, transport: HubTransport) -> PushResult | None:
        """Send one batch; None when the outbox is empty. HubUnavailable and HubRefused
        propagate with the batch still in the outbox."""
        if self.cut_windows is not None and self.outbox.stats().backlog:
            self.cut_windows()  # traffic since the last push: send its counts with it
        body, count, first, last, more = self._batch()
        if not count:
            return None
        try:
            answer = transport.call("POST", agent_path(self.agent, "telemetry"), body, NDJSON)
        except HubRefused as exc:
            if exc.status == 413 and count > 1:
                self.batch_records = max(1, count // 2)
                log.warning("hub refused a telemetry batch of %d records as too large; "
                            "sending %d at a time", count, self.batch_records)
                return PushResult(0, 0, True)
            log.warning("hub refused telemetry seq %d..%d, kept in the outbox: %s",
                        first, last, exc.message)
            raise
        doc = answer.json()
        acked = doc.get("acked") if isinstance(doc, dict) else None
        if type(acked) is not int:
            raise HubRefused(502, f"hub answered a telemetry batch without an ack: {doc!r}")
        self.outbox.ack(min(acked, last))
        return PushResult(count, acked, more)
