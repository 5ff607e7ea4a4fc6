"""The agent's own identity: an Ed25519 key and an id, created on first start."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.contract.errors import KeyFileError
from edge_agent.contract.protocol import (
    atomic_write,
    generate_signing_key,
    key_fingerprint,
    load_private_key,
    public_key_b64,
    save_private_key,
)
from edge_agent.contract.tls import (
    ServerCert,
    create_cert,
    load_or_create_cert,
    proof_valid,
    read_proof,
    write_proof,
)

IDENTITY_KEY = "identity.key"
AGENT_FILE = "agent.json"


@dataclass(frozen=True)
class AgentIdentity:
    agent_id: str
    key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        """Base64 of the raw 32-byte public key, as the desktop pins it."""
        return public_key_b64(self.key)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.key)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def load_or_create_identity(agent_dir: Path) -> AgentIdentity:
    """Read DIR/identity.key and DIR/agent.json, creating whichever is missing."""
    agent_dir = Path(agent_dir)
    agent_dir.mkdir(parents=True, exist_ok=True)
    key_path = agent_dir / IDENTITY_KEY
    if key_path.exists():
        key = load_private_key(key_path)
    else:
        key = generate_signing_key()
        save_private_key(key, key_path)
    info_path = agent_dir / AGENT_FILE
    if info_path.exists():
        try:
            agent_id = json.loads(info_path.read_bytes())["agent_id"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{info_path} is unreadable: {exc}") from exc
        if not isinstance(agent_id, str) or not agent_id:
            raise KeyFileError(f"{info_path} has no agent_id")
    else:
        agent_id = str(uuid.uuid4())
        atomic_write(info_path, json.dumps({"agent_id": agent_id}).encode() + b"\n")
    return AgentIdentity(agent_id, key)


def load_or_create_tls(agent_dir: Path, identity: AgentIdentity
                       ) -> tuple[ServerCert, dict[str, str]]:
    """DIR/tls.key (0600) and DIR/tls.crt, created on first use, and the identity key's
    signature over the certificate's key hash (re-made if missing or stale)."""
    cert = load_or_create_cert(agent_dir, f"outpost-agent-{identity.agent_id[:8]}")
    proof = read_proof(agent_dir)
    if (proof is None or proof.get("spki_sha256") != cert.spki
            or not proof_valid(identity.key.public_key(), cert.spki, proof.get("signature"))):
        proof = write_proof(agent_dir, cert.spki, identity.key)
    return cert, proof


def rotate_tls(agent_dir: Path, identity: AgentIdentity) -> tuple[ServerCert, dict[str, str]]:
    """A new TLS key and certificate, vouched for by the same identity key: the desktop
    re-pins it on its next call without a new enrolment."""
    cert = create_cert(agent_dir, f"outpost-agent-{identity.agent_id[:8]}")
    return cert, write_proof(agent_dir, cert.spki, identity.key)
