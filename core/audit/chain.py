"""The chain itself: one writer (:func:`record_event`) and one checker (:func:`verify_rows`).

Every entry's hash is ``sha256(prev_hash + "\\n" + canonical JSON of the entry)``; the
canonical JSON holds every column but the two hashes, with sorted keys. ``record_event``
runs on the caller's transaction cursor, so an event is committed with the change it
records or not at all, and the catalog's write lock keeps positions gapless.
"""
from __future__ import annotations

import getpass
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

from edge_agent.contract.audit_events import event_signed_by, parse_event
from edge_agent.contract.errors import SchemaError

GENESIS = "0" * 64
DESKTOP_KINDS = ("register", "alias", "bundle_build", "deploy", "rollback", "approve",
                 "key_rotation", "retrain", "gate", "rollout", "policy")
AGENT_EVENT = "agent_event"
COLUMNS = ("position", "recorded_at", "kind", "actor", "agent", "model", "version", "sha256",
           "detail",
           "agent_seq", "agent_ts", "agent_boot", "agent_body", "agent_sig", "agent_key")
SELECT = ", ".join((*COLUMNS, "prev_hash", "hash"))


@dataclass(frozen=True)
class SignedAgentEvent:
    """An agent event whose signature checked out against the agent's pinned key."""

    body: str
    signature: str
    public_key: str


def canonical(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(doc), option=orjson.OPT_SORT_KEYS)


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record_event(cur: duckdb.DuckDBPyConnection, kind: str, *, agent: str | None = None,
                 model: str | None = None, version: int | None = None,
                 sha256: str | None = None, detail: Mapping[str, Any] | None = None,
                 actor: str | None = None, signed: SignedAgentEvent | None = None) -> int:
    """Append one entry on `cur` (inside the caller's transaction); returns its position.

    Desktop kinds: see DESKTOP_KINDS. An agent's own event passes `signed` (already
    verified) and kind ``agent_event``; its fields come from the signed body."""
    if kind not in DESKTOP_KINDS and kind != AGENT_EVENT:
        raise ValueError(f"unknown audit event kind {kind!r}")
    row = cur.execute("SELECT position, hash FROM audit_event "
                      "ORDER BY position DESC LIMIT 1").fetchone()
    position, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS)
    entry: dict[str, Any] = {
        "position": position, "recorded_at": now_iso(), "kind": kind,
        "actor": actor or ("agent" if signed else _actor()), "agent": agent, "model": model,
        "version": version, "sha256": sha256,
        "detail": canonical(detail or {}).decode(),
        "agent_seq": None, "agent_ts": None, "agent_boot": None, "agent_body": None,
        "agent_sig": None, "agent_key": None}
    if signed is not None:
        event = parse_event(signed.body)
        entry.update(model=event.model, version=event.version, sha256=event.sha256,
                     agent_seq=event.seq, agent_ts=float(event.ts), agent_boot=event.boot,
                     agent_body=signed.body, agent_sig=signed.signature,
                     agent_key=signed.public_key)
    digest = entry_hash(prev, entry)
    cur.execute(f"INSERT INTO audit_event ({SELECT}) VALUES "
                f"({', '.join('?' * (len(COLUMNS) + 2))})",
                [*(entry[c] for c in COLUMNS), prev, digest])
    return position


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    head: str
    bad_position: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "head": self.head,
                "bad_entry": self.bad_position, "reason": self.reason}


def row_entry(row: Sequence[Any]) -> tuple[dict[str, Any], str, str]:
    """(entry, prev_hash, hash) of a row selected with SELECT."""
    entry = dict(zip(COLUMNS, row[:len(COLUMNS)], strict=True))
    return entry, str(row[-2]), str(row[-1])


def _agent_entry_problem(entry: Mapping[str, Any]) -> str | None:
    body, sig, key = entry.get("agent_body"), entry.get("agent_sig"), entry.get("agent_key")
    if not (isinstance(body, str) and isinstance(sig, str) and isinstance(key, str)):
        return "agent entry without its signed body"
    if not event_signed_by(body, sig, key):
        return "agent signature does not match the body"
    try:
        event = parse_event(body)
    except SchemaError as exc:
        return str(exc)
    said = {"model": event.model, "version": event.version, "sha256": event.sha256,
            "agent_seq": event.seq, "agent_ts": float(event.ts), "agent_boot": event.boot}
    for name, value in said.items():
        if entry.get(name) != value:
            return f"{name} differs from what the agent signed"
    return None


def verify_rows(rows: Iterable[tuple[dict[str, Any], str, str]]) -> ChainCheck:
    """Walk entries in position order: gapless positions, each prev_hash the last hash,
    each hash recomputed, each agent entry's signature and fields. First failure wins."""
    prev, n = GENESIS, 0
    for entry, prev_hash, digest in rows:
        n += 1
        position = entry.get("position")
        if position != n:
            where = n if isinstance(position, int) and position > n else position
            return ChainCheck(False, n - 1, prev, where if isinstance(where, int) else n,
                              f"entry {n} is missing or out of order (found {position})")
        if prev_hash != prev:
            return ChainCheck(False, n - 1, prev, n,
                              f"entry {n} does not follow entry {n - 1} (previous hash differs)")
        if entry_hash(prev, entry) != digest:
            return ChainCheck(False, n - 1, prev, n, f"entry {n} was edited (hash differs)")
        if entry.get("kind") == AGENT_EVENT and (problem := _agent_entry_problem(entry)):
            return ChainCheck(False, n - 1, prev, n, f"entry {n}: {problem}")
        prev = digest
    return ChainCheck(True, n, prev)
