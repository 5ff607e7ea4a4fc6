"""Agent events for the audit trail: what the agent's store did, as the agent saw it.

Every install, activation and rollback becomes one event: the agent's id, its boot id
(a fresh uuid per process), its own gapless event sequence (kept across restarts), its
own clock, and what changed. The body is canonical JSON, signed with the agent's
identity key under a domain prefix (so no other signature the key makes — identity
nonces, telemetry exports — can pass for an event). The record travels in the
telemetry outbox as its own kind, ``agent_event``, beside request and histogram
records, and reaches the desktop with pull, hub push and export files alike.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from edge_agent.contract.errors import KeyFileError, SchemaError
from edge_agent.contract.signing import Signer, public_key_from_b64, verify_signature

AGENT_EVENT_KIND = "agent_event"
AGENT_EVENTS = ("install", "activate", "rollback")
_DOMAIN = b"outpost-agent-event/1\n"
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "agent_id": str, "boot": str, "seq": int, "ts": (int, float), "event": str,
    "model": str, "version": int, "previous": (int, type(None)), "sha256": (str, type(None)),
}


@dataclass(frozen=True)
class AgentEvent:
    agent_id: str
    boot: str
    seq: int  # the agent's own event sequence: 1, 2, 3… across restarts
    ts: float  # the agent's clock, unix seconds
    event: str  # 'install' | 'activate' | 'rollback'
    model: str
    version: int
    previous: int | None = None  # the version active before (activate, rollback)
    sha256: str | None = None  # of the bundle file (install)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class AgentEventRecord:
    """The outbox/telemetry record: the signed body and its signature (base64)."""

    seq: int  # the outbox sequence (not the event's own)
    ts: float
    body: str
    signature: str
    kind: str = AGENT_EVENT_KIND


def canonical(doc: Mapping[str, Any]) -> bytes:
    """The one byte form signed and hashed: sorted keys, no spaces, UTF-8."""
    return orjson.dumps(dict(doc), option=orjson.OPT_SORT_KEYS)


def sign_event(event: AgentEvent, key: Signer) -> dict[str, Any]:
    """The outbox record (without its outbox seq) of a signed event."""
    body = canonical(event.to_dict())
    signature = key.sign(_DOMAIN + body)
    return {"kind": AGENT_EVENT_KIND, "ts": event.ts, "body": body.decode(),
            "signature": base64.b64encode(signature).decode("ascii")}


def parse_event(body: str) -> AgentEvent:
    """The event in a signed body; a missing or mistyped field is a SchemaError."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SchemaError("agent event body is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise SchemaError("agent event body is not a JSON object")
    for name, expected in _FIELDS.items():
        value = doc.get(name)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise SchemaError(f"agent event: bad or missing {name}")
    if doc["event"] not in AGENT_EVENTS:
        raise SchemaError(f"agent event kind {doc['event']!r} is unknown")
    return AgentEvent(**{name: doc[name] for name in _FIELDS})


def event_signed_by(body: str, signature: str, public_key_b64: str) -> bool:
    """Whether `signature` (base64) is the key's signature over the event body."""
    try:
        raw = base64.b64decode(signature, validate=True)
        pub = public_key_from_b64(public_key_b64)
    except (binascii.Error, ValueError, KeyFileError):
        return False
    return verify_signature(pub, raw, _DOMAIN + body.encode())
