"""Agent events carried with telemetry: verified against the agent's pinned key, chained.

Called by the telemetry ingest inside its transaction, over the same staged Arrow
table (pull, hub push and export file alike). An event already chained — the same
(agent, agent sequence) — is skipped, so records pulled twice are stored once. An event
whose signature does not verify against the pinned identity key, or whose body is
malformed, is refused: kept aside in ``audit_rejected`` and counted, never chained.
"""
from __future__ import annotations

import duckdb

from core.audit.chain import AGENT_EVENT, SignedAgentEvent, record_event
from edge_agent.contract.audit_events import AGENT_EVENT_KIND, event_signed_by, parse_event
from edge_agent.contract.errors import SchemaError


def ingest_agent_events(cur: duckdb.DuckDBPyConnection,
                        agent: str | None = None) -> dict[str, int]:
    """Chain the ``agent_event`` records of the staged table; returns events chained per
    agent. Every record is `agent`'s, or (agent None) the table has an ``agent`` column."""
    who = "s.agent" if agent is None else "$agent"
    rows = cur.execute(
        f"SELECT {who}, s.seq, s.body, s.signature, a.public_key FROM staged s "
        f"LEFT JOIN agent a ON a.name = {who} WHERE s.kind = $kind "
        f"ORDER BY {'s.agent, ' if agent is None else ''}s.seq",
        {"kind": AGENT_EVENT_KIND, **({} if agent is None else {"agent": agent})}).fetchall()
    chained: dict[str, int] = {}
    for name, seq, body, signature, key in rows:
        reason = None
        if not (isinstance(key, str) and isinstance(body, str) and isinstance(signature, str)
                and event_signed_by(body, signature, key)):
            reason = "not signed by the agent's pinned identity key"
        else:
            try:
                event = parse_event(body)
            except SchemaError as exc:
                reason = str(exc)
        if reason is not None:
            _reject(cur, name, seq, body, signature, reason)
            continue
        seen = cur.execute("SELECT 1 FROM audit_event WHERE kind = ? AND agent = ? AND "
                           "agent_seq = ? AND agent_boot = ?",
                           [AGENT_EVENT, name, event.seq, event.boot]).fetchone()
        if seen:
            continue
        record_event(cur, AGENT_EVENT, agent=name,
                     detail={"event": event.event, "previous": event.previous,
                             "agent_id": event.agent_id, "outbox_seq": seq},
                     signed=SignedAgentEvent(body, signature, key))
        chained[name] = chained.get(name, 0) + 1
    return chained


def _reject(cur: duckdb.DuckDBPyConnection, agent: str, seq: int, body: str | None,
            signature: str | None, reason: str) -> None:
    exists = cur.execute("SELECT 1 FROM audit_rejected WHERE agent = ? AND seq = ?",
                         [agent, seq]).fetchone()
    if not exists:
        cur.execute("INSERT INTO audit_rejected (agent, seq, body, signature, reason) "
                    "VALUES (?, ?, ?, ?, ?)", [agent, seq, body, signature, reason])
