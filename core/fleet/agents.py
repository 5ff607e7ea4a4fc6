"""Push agents: enrolling one (pinning its identity key), connecting, polling its status.

Every conversation with an enrolled agent starts with :func:`connect`, which
makes the agent sign a fresh nonce and compares its key with the pinned one, so
a device swapped in at the same address is refused before anything is sent.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from core.alerts import Condition, sync_alerts
from core.catalog import Catalog
from core.errors import InvalidInput, OutpostError
from core.fleet.client import AgentClient
from core.fleet.errors import AgentPinMismatch
from core.fleet.records import (
    AgentRecord,
    AgentStatus,
    StatusReport,
    assemble_status,
    get_agent,
)
from core.keys import current_rotation
from core.vault import set_agent_token
from edge_agent.contract.protocol import check_model_name


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
    counter = StatusReport.from_doc(status).key_rotation
    set_agent_token(catalog.settings, name, token)
    with catalog.transaction() as cur:
        cur.execute("DELETE FROM agent WHERE name = ?", [name])
        cur.execute(
            "INSERT INTO agent (name, url, token, agent_id, public_key, mode, key_index, "
            "key_counter, last_seen_at, last_status, tls_spki) "
            "VALUES (?, ?, '', ?, ?, ?, ?, ?, now(), ?, ?)",
            [name, url.rstrip("/"), ident.agent_id, ident.public_key, mode,
             current_rotation(catalog), counter or 0, orjson.dumps(status).decode(),
             ident.tls_spki])
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


def poll_agent(catalog: Catalog, record: AgentRecord) -> AgentStatus:
    """Ask a push agent for its status now: online or not, what it serves, its backlog."""
    status: dict[str, Any] | None = None
    error: str | None = None
    pin_failed = False
    try:
        with connect(catalog, record.name) as (_, client):
            status = client.status()
    except AgentPinMismatch as exc:  # another certificate at that address: the badge
        error, pin_failed = str(exc), True
    except OutpostError as exc:  # unreachable, or online but wrong token / different key
        error = str(exc)
    record_contact(catalog, record.name, status, error)
    report = None if status is None else StatusReport.from_doc(status)
    return assemble_status(catalog, record, report, online=status is not None, error=error,
                           pin_failed=pin_failed)
