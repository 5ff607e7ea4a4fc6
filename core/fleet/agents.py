"""Enrolled agents: adding one (pinning its identity key), listing, polling status.

Every conversation with an enrolled agent starts with :func:`connect`, which
makes the agent sign a fresh nonce and compares its key with the pinned one, so
a device swapped in at the same address is refused before anything is sent.
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from core.alerts import Condition, sync_alerts
from core.catalog import Catalog
from core.errors import InvalidInput, OutpostError
from core.fleet.client import AgentClient
from core.fleet.errors import AgentNotFound, AgentPinMismatch, AgentUnreachable
from core.keys import current_rotation
from core.vault import agent_token, set_agent_token
from edge_agent.contract.protocol import check_model_name


@dataclass(frozen=True)
class AgentRecord:
    name: str
    url: str
    token: str
    agent_id: str
    public_key: str
    mode: str
    key_index: int
    key_counter: int
    added_at: datetime
    last_seen_at: datetime | None
    last_error: str | None
    tls_spki: str | None = None  # pinned certificate key (https agents)
    pin_failed_at: datetime | None = None  # the last call met another certificate


@dataclass(frozen=True)
class AgentStatus:
    agent: str
    online: bool
    mode: str
    url: str
    models: list[dict[str, Any]]  # [{"name", "active", "versions", ...}] from the agent
    telemetry_rows: int  # request records from this agent now in the catalog
    backlog: int | None  # records waiting in the agent's outbox
    runtime: dict[str, Any]  # agent version, python, onnxruntime, opset_max
    error: str | None
    pin_failed: bool = False  # another TLS certificate answered at the agent's address

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "online": self.online, "mode": self.mode,
                "models": self.models, "telemetry_rows": self.telemetry_rows, "url": self.url,
                "backlog": self.backlog, "runtime": self.runtime, "error": self.error,
                "pin_failed": self.pin_failed}


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


def _check_name(name: str) -> str:
    try:
        return check_model_name(name)
    except Exception as exc:  # noqa: BLE001 -- the agent's naming rule, our message
        raise InvalidInput(f"agent name {name!r} must be letters, digits, '_', '.', '-'") from exc


def add_agent(catalog: Catalog, name: str, url: str, token: str, *, mode: str = "push",
              replace: bool = False) -> AgentRecord:
    """Reach the agent, make it prove its identity key, pin that key and record it."""
    _check_name(name)
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"agent URL {url!r} must start with http:// or https://")
    exists = catalog.cursor().execute("SELECT 1 FROM agent WHERE name = ?", [name]).fetchall()
    if exists and not replace:
        raise InvalidInput(f"agent {name!r} is already enrolled (use --replace to re-enrol)")
    with AgentClient(name, url, token) as client:
        ident = client.identity()  # no token yet: first the identity key vouches for TLS
        status = client.status()
    counter = status.get("key_rotation")
    set_agent_token(catalog.settings, name, token)
    with catalog.transaction() as cur:
        cur.execute("DELETE FROM agent WHERE name = ?", [name])
        cur.execute(
            "INSERT INTO agent (name, url, token, agent_id, public_key, mode, key_index, "
            "key_counter, last_seen_at, last_status, tls_spki) "
            "VALUES (?, ?, '', ?, ?, ?, ?, ?, now(), ?, ?)",
            [name, url.rstrip("/"), ident.agent_id, ident.public_key, mode,
             current_rotation(catalog), counter if isinstance(counter, int) else 0,
             orjson.dumps(status).decode(), ident.tls_spki])
    return get_agent(catalog, name)


@contextmanager
def connect(catalog: Catalog, name: str) -> Iterator[tuple[AgentRecord, AgentClient]]:
    """A client for an enrolled agent whose pinned identity has just been proven."""
    record = get_agent(catalog, name)
    if record.mode == "hub":
        raise InvalidInput(f"agent {name} is in hub mode: the desktop cannot call it; it "
                           "polls the hub (`outpost hub serve`)")
    client = AgentClient(record.name, record.url, record.token, tls_pin=record.tls_spki)
    try:
        try:
            client.verify_pinned(record.public_key)
        except AgentPinMismatch as mismatch:
            client.close()
            client = _repin(catalog, record, mismatch)
        if record.pin_failed_at is not None:
            with catalog.transaction() as cur:
                cur.execute("UPDATE agent SET pin_failed_at = NULL WHERE name = ?", [name])
        yield record, client
    finally:
        client.close()


def _repin(catalog: Catalog, record: AgentRecord, mismatch: AgentPinMismatch) -> AgentClient:
    """Another certificate at the agent's address: accept it only if the pinned identity
    key vouches for it (`outpost-agent rotate-cert`); otherwise badge the agent and fail
    with the mismatch (both keys named). The token is not sent on either path."""
    client = AgentClient(record.name, record.url, record.token, tls_pin=None)
    try:
        ident = client.verify_pinned(record.public_key)
    except OutpostError:
        client.close()
        with catalog.transaction() as cur:
            cur.execute("UPDATE agent SET pin_failed_at = now(), last_error = ? WHERE name = ?",
                        [str(mismatch), record.name])
        raise mismatch from None
    with catalog.transaction() as cur:
        cur.execute("UPDATE agent SET tls_spki = ? WHERE name = ?", [ident.tls_spki, record.name])
    return client


def telemetry_rows(catalog: Catalog, name: str) -> int:
    rows = catalog.cursor().execute(
        "SELECT count(*) FROM telemetry_request WHERE agent = ?", [name]).fetchall()
    return int(rows[0][0])


def record_contact(catalog: Catalog, name: str, status: dict[str, Any] | None,
                   error: str | None) -> None:
    """Remember the last answer (or failure) and keep the 'unreachable' alert in step."""
    holding = []
    if error is not None:
        holding.append(Condition(f"health/{name}/unreachable", "health", "alert",
                                 f"agent {name} is unreachable: {error}", agent=name))
    with catalog.transaction() as cur:
        if error is None:
            cur.execute("UPDATE agent SET last_seen_at = now(), last_error = NULL, "
                        "last_status = coalesce(?, last_status) WHERE name = ?",
                        [None if status is None else orjson.dumps(status).decode(), name])
        else:
            cur.execute("UPDATE agent SET last_error = ? WHERE name = ?", [error, name])
        sync_alerts(cur, f"health/{name}/unreachable", holding)


def agent_status(catalog: Catalog, name: str) -> AgentStatus:
    """Poll one agent: online or not, what it serves, its runtime and outbox backlog."""
    record = get_agent(catalog, name)
    if record.mode == "hub":  # it calls the hub: its status is what it said last
        from core.hub.contacts import hub_agent_status
        return hub_agent_status(catalog, record)
    status: dict[str, Any] | None = None
    error: str | None = None
    pin_failed = False
    try:
        with connect(catalog, name) as (_, client):
            status = client.status()
    except AgentPinMismatch as exc:
        error, pin_failed = str(exc), True
    except AgentUnreachable as exc:
        error = str(exc)
    except OutpostError as exc:  # wrong token, different key: online, but not usable
        error = str(exc)
    record_contact(catalog, name, status, error)
    telemetry = (status or {}).get("telemetry") or {}
    runtime = {k: (status or {}).get(k) for k in ("version", "python", "onnxruntime",
                                                  "opset_max", "uptime_s", "disk_free_bytes")}
    return AgentStatus(
        agent=name, online=status is not None, mode=record.mode, url=record.url,
        models=list((status or {}).get("models") or []),
        telemetry_rows=telemetry_rows(catalog, name),
        backlog=telemetry.get("backlog") if isinstance(telemetry, dict) else None,
        runtime=runtime, error=error, pin_failed=pin_failed)


def fleet_status(catalog: Catalog) -> list[AgentStatus]:
    """Every agent's status, polled in parallel so a silent one costs one timeout, not many."""
    names = [a.name for a in list_agents(catalog)]
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return list(pool.map(lambda name: agent_status(catalog, name), names))
