"""The audit trail: one append-only, hash-chained event log in the catalog.

Every writer calls :func:`record_event` on its own transaction cursor. Agent events
arrive with telemetry (:mod:`core.audit.agent_ingest`); :mod:`core.audit.query` answers
"what was serving on agent A at time T"; :mod:`core.audit.pack` writes and checks the
signed evidence pack.
"""
from core.audit.chain import SignedAgentEvent, record_event

__all__ = ["SignedAgentEvent", "record_event"]
