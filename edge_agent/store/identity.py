"""The agent's own identity: an Ed25519 key and an id, created on first start.

The key is kept raw; the ``cryptography`` key object is made only to sign (an audit
event, an enrolment, a challenge), so a restart that only serves does not load
``cryptography`` (contract/signing.py)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.contract.errors import KeyFileError
from edge_agent.contract.files import atomic_write
from edge_agent.contract.signing import (
    generate_signing_key,
    key_fingerprint,
    load_private_raw,
    private_key_from_raw,
    public_from_private,
    public_key_b64,
    save_private_key,
    sign_raw,
)
from edge_agent.contract.tls import (
    ServerCert,
    create_cert,
    load_or_create_cert,
    proof_valid,
    read_proof,
    write_proof,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

IDENTITY_KEY = "identity.key"
AGENT_FILE = "agent.json"


@dataclass(frozen=True)
class AgentIdentity:
    agent_id: str
    private_raw: bytes = field(repr=False)
    public_raw: bytes

    @classmethod
    def of(cls, agent_id: str, private_raw: bytes) -> AgentIdentity:
        return cls(agent_id, private_raw, public_from_private(private_raw))

    @property
    def key(self) -> Ed25519PrivateKey:
        """The private key as a cryptography object (loads cryptography)."""
        return private_key_from_raw(self.private_raw)

    @property
    def public_key(self) -> str:
        """Base64 of the raw 32-byte public key, as the desktop pins it."""
        return public_key_b64(self.public_raw)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return sign_raw(self.private_raw, data)


def load_or_create_identity(agent_dir: Path) -> AgentIdentity:
    """Read DIR/identity.key and DIR/agent.json, creating whichever is missing."""
    agent_dir = Path(agent_dir)
    agent_dir.mkdir(parents=True, exist_ok=True)
    key_path = agent_dir / IDENTITY_KEY
    if key_path.exists():
        private_raw = load_private_raw(key_path)
    else:
        key = generate_signing_key()
        save_private_key(key, key_path)
        private_raw = key.private_bytes_raw()
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
    return AgentIdentity.of(agent_id, private_raw)


def load_or_create_tls(agent_dir: Path, identity: AgentIdentity
                       ) -> tuple[ServerCert, dict[str, str]]:
    """DIR/tls.key (0600) and DIR/tls.crt, created on first use, and the identity key's
    signature over the certificate's key hash (re-made if missing or stale)."""
    cert = load_or_create_cert(agent_dir, f"outpost-agent-{identity.agent_id[:8]}")
    proof = read_proof(agent_dir)
    if (proof is None or proof.get("spki_sha256") != cert.spki
            or not proof_valid(identity.public_raw, cert.spki, proof.get("signature"))):
        proof = write_proof(agent_dir, cert.spki, identity)
    return cert, proof


def rotate_tls(agent_dir: Path, identity: AgentIdentity) -> tuple[ServerCert, dict[str, str]]:
    """A new TLS key and certificate, vouched for by the same identity key: the desktop
    re-pins it on its next call without a new enrolment."""
    cert = create_cert(agent_dir, f"outpost-agent-{identity.agent_id[:8]}")
    return cert, write_proof(agent_dir, cert.spki, identity)
