"""Enrolling agents for device-initiated mode, revoking them, and checking who calls.

An enrolment is an `agent` row with mode 'hub' plus a `hub_enrolment` row holding the
sha256 of a fresh token. The token itself exists only in the enrolment file. On its
first call the agent proves its identity key by signing :func:`claim_message`; the hub
pins that key, so the same file used on a second device is refused. An agent already
enrolled for push keeps its pinned key when it switches to hub mode.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.catalog import Catalog
from core.errors import InvalidInput, StorageError
from core.fleet.errors import AgentNotFound
from core.fleet.records import get_agent
from core.hub.tls import hub_certificate
from core.keys import current_rotation, key_info
from edge_agent.contract.asgi import HTTPError
from edge_agent.contract.hub_protocol import Enrolment, claim_message, token_sha256
from edge_agent.contract.protocol import (
    KeyFileError,
    atomic_write,
    check_model_name,
    key_fingerprint,
    public_key_from_b64,
    verify_signature,
)

HUB_MODE = "hub"


@dataclass(frozen=True)
class HubAgent:
    """The agent a request's token belongs to."""

    name: str
    agent_id: str
    public_key: str  # '' until the first call pins it
    claimed: bool


def _check(name: str, hub_url: str) -> None:
    try:
        check_model_name(name)
    except Exception as exc:  # noqa: BLE001 -- the agent naming rule, our message
        raise InvalidInput(f"agent name {name!r} must be letters, digits, '_', '.', '-'") \
            from exc
    if not hub_url.startswith(("http://", "https://")):
        raise InvalidInput(f"hub URL {hub_url!r} must start with http:// or https://")


def enroll_agent(catalog: Catalog, name: str, hub_url: str, *,
                 replace: bool = False) -> Enrolment:
    """A one-time enrolment for `name`: a new token (stored hashed) and the desktop key.

    A push-mode agent of that name switches to hub mode and keeps its pinned key (its
    telemetry continues under the same name and seq space). `replace` issues a new token
    for a hub agent and forgets its pinned key, for a replaced device."""
    _check(name, hub_url)
    hub_url = hub_url.rstrip("/")
    key = key_info(catalog)
    token = secrets.token_urlsafe(32)
    try:
        existing = get_agent(catalog, name)
    except AgentNotFound:
        existing = None
    if existing is not None and existing.mode == "local":
        raise InvalidInput(f"agent {name!r} is the desktop's local agent; it is not enrolled "
                           "for the hub")
    if existing is not None and existing.mode == HUB_MODE and not replace:
        raise InvalidInput(f"agent {name!r} is already enrolled for the hub (use --replace to "
                           "issue a new token; the old one stops working)")
    with catalog.transaction() as cur:
        if existing is None:
            cur.execute(
                "INSERT INTO agent (name, url, token, agent_id, public_key, mode, key_index, "
                "key_counter) VALUES (?, ?, '', '', '', ?, ?, 0)",
                [name, hub_url, HUB_MODE, current_rotation(catalog)])
        elif existing.mode == HUB_MODE:  # --replace: a new device may claim it
            cur.execute("UPDATE agent SET url = ?, agent_id = '', public_key = '' "
                        "WHERE name = ?", [hub_url, name])
        else:
            cur.execute("UPDATE agent SET url = ?, mode = ?, last_error = NULL WHERE name = ?",
                        [hub_url, HUB_MODE, name])
        cur.execute("DELETE FROM hub_enrolment WHERE agent = ?", [name])
        cur.execute("INSERT INTO hub_enrolment (agent, token_sha256, hub_url) VALUES (?, ?, ?)",
                    [name, token_sha256(token), hub_url])
    created = datetime.now(UTC).isoformat(timespec="seconds")
    pin = hub_certificate(catalog.settings).spki if hub_url.startswith("https://") else ""
    return Enrolment(name, hub_url, token, key.public_key, key.fingerprint, created, pin)


def write_enrolment(enrolment: Enrolment, out: Path) -> Path:
    """The file for `outpost-agent serve --enroll FILE` (mode 0600: it holds the token)."""
    try:
        return atomic_write(Path(out), enrolment.to_json_bytes(), mode=0o600)
    except OSError as exc:
        raise StorageError(f"cannot write enrolment file {out}: {exc.strerror}") from exc


def revoke_agent(catalog: Catalog, name: str) -> None:
    """The hub refuses this agent's token from now on (its history stays)."""
    get_agent(catalog, name)
    with catalog.transaction() as cur:
        rows = cur.execute("UPDATE hub_enrolment SET revoked_at = coalesce(revoked_at, now()) "
                           "WHERE agent = ? RETURNING agent", [name]).fetchall()
    if not rows:
        raise InvalidInput(f"agent {name!r} is not enrolled for the hub "
                           "(`outpost agent enroll` makes a hub enrolment)")


def authenticate(cur: duckdb.DuckDBPyConnection, name: str, token: str) -> HubAgent:
    """The agent `token` belongs to, which must be `name`, enrolled, in hub mode, and not
    revoked; otherwise the HTTP refusal saying which."""
    rows = cur.execute(
        "SELECT e.agent, e.revoked_at, a.mode, a.agent_id, a.public_key "
        "FROM hub_enrolment e JOIN agent a ON a.name = e.agent WHERE e.token_sha256 = ?",
        [token_sha256(token)]).fetchall()
    if not rows:
        raise HTTPError(401, "unknown enrolment token")
    agent, revoked, mode, agent_id, public_key = rows[0]
    if agent != name:
        raise HTTPError(403, f"this token belongs to agent {agent!r}; it cannot act as "
                                f"{name!r}")
    if revoked is not None:
        raise HTTPError(403, f"agent {name!r} was revoked; enrol it again to reconnect")
    if mode != HUB_MODE:
        raise HTTPError(403, f"agent {name!r} is enrolled in {mode} mode now, not hub mode")
    return HubAgent(name, str(agent_id), str(public_key), bool(public_key))


def claim(catalog: Catalog, agent: HubAgent, token: str, agent_id: str, public_key: str,
          signature: str) -> None:
    """Pin the identity key the agent proves it holds, or check it against the pinned one."""
    try:
        key = public_key_from_b64(public_key)
        proof = base64.b64decode(signature, validate=True)
    except (KeyFileError, binascii.Error, ValueError) as exc:
        raise HTTPError(400, "enrolment claim: malformed public_key or signature") from exc
    if not verify_signature(key, proof, claim_message(agent.name, token)):
        raise HTTPError(403, "enrolment claim: the signature does not match the public key")
    if agent.public_key and agent.public_key != public_key:
        pinned = key_fingerprint(public_key_from_b64(agent.public_key))
        raise HTTPError(403, f"agent {agent.name!r} presents identity key "
                                f"{key_fingerprint(key)}, not the pinned {pinned}: enrol the "
                                "replaced device with `outpost agent enroll --replace`")
    with catalog.transaction() as cur:
        cur.execute("UPDATE agent SET agent_id = ?, public_key = ? WHERE name = ?",
                    [agent_id, public_key, agent.name])
        cur.execute("UPDATE hub_enrolment SET claimed_at = coalesce(claimed_at, now()) "
                    "WHERE agent = ?", [agent.name])
