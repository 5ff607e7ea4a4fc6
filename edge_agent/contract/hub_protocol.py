"""The contract of device-initiated mode, shared by the desktop hub and the agent: the
enrolment file, the message an agent signs to claim its enrolment, and the routes.

Routes (bearer = the enrolment token; NAME = the agent's name in the desktop catalog):
  GET  /hub/v1/health
  POST /hub/v1/agents/NAME/enroll     {"agent_id", "public_key", "signature"} -> {"agent"}
  POST /hub/v1/agents/NAME/poll       the agent's status and a fresh "hub_nonce" ->
                                      {"agent", "nonce", "desired": [...], "rotations"},
                                      signed with the desktop key (ANSWER_SIGNATURE header)
  GET  /hub/v1/agents/NAME/bundles/SHA  (Range: bytes=N- resumes a cut download)
  POST /hub/v1/agents/NAME/outcome    {"deployment", "model", "status", "version", "error"}
  POST /hub/v1/agents/NAME/telemetry  NDJSON outbox records -> {"acked": seq, "inserted"}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_agent.contract.errors import AgentError

ENROLMENT_FORMAT = "outpost-enrolment"
PREFIX = "/hub/v1"
# An agent polls this often unless told otherwise; the hub reads it as "online" while
# the agent keeps to it (its status document's hub.poll_s overrides).
DEFAULT_POLL_S = 30.0


class EnrolmentFileInvalid(AgentError):
    http_status = 400


@dataclass(frozen=True)
class Enrolment:
    """What `outpost agent enroll NAME` hands to the device, once."""

    agent: str
    hub_url: str
    token: str
    desktop_key: str  # base64 of the desktop's raw 32-byte signing public key
    desktop_key_fingerprint: str
    created: str
    hub_tls_spki: str = ""  # the hub certificate's key (sha256 of its SPKI): pinned


    def to_json_bytes(self) -> bytes:
        doc = {"format": ENROLMENT_FORMAT, "format_version": 1, **asdict(self)}
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def from_json_bytes(cls, data: bytes, where: str = "enrolment file") -> Enrolment:
        try:
            doc = json.loads(data)
        except ValueError:
            raise EnrolmentFileInvalid(f"{where} is not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != ENROLMENT_FORMAT:
            raise EnrolmentFileInvalid(f"{where} is not an Outpost enrolment file")
        if doc.get("format_version") != 1:
            raise EnrolmentFileInvalid(
                f"{where} has format_version {doc.get('format_version')!r}; this agent reads 1")
        fields = ("agent", "hub_url", "token", "desktop_key", "desktop_key_fingerprint",
                  "created")
        missing = [f for f in fields if not isinstance(doc.get(f), str) or not doc[f]]
        if missing:
            raise EnrolmentFileInvalid(f"{where} lacks {', '.join(missing)}")
        if not doc["hub_url"].startswith(("http://", "https://")):
            raise EnrolmentFileInvalid(f"{where}: hub_url must start with http:// or https://")
        pin = doc.get("hub_tls_spki") or ""
        if not isinstance(pin, str) or (pin and len(pin) != 64):
            raise EnrolmentFileInvalid(f"{where}: hub_tls_spki must be a sha256 hex digest")
        if doc["hub_url"].startswith("https://") and not pin:
            raise EnrolmentFileInvalid(f"{where} names an https hub but no hub_tls_spki to "
                                       "pin: enrol again with this Outpost")
        return cls(**{f: doc[f] for f in fields}, hub_tls_spki=pin)

    @classmethod
    def read(cls, path: Path) -> Enrolment:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise EnrolmentFileInvalid(f"cannot read enrolment file {path}: "
                                       f"{exc.strerror}") from None
        return cls.from_json_bytes(data, f"enrolment file {path}")


def token_sha256(token: str) -> str:
    """How the desktop stores a token: tokens are 256 random bits, so a plain hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def claim_message(agent: str, token: str) -> bytes:
    """What an agent signs with its identity key to claim an enrolment: binds the key to
    this agent name and this token, so a signature cannot be replayed for another."""
    return b"outpost-hub-enroll\0" + agent.encode() + b"\0" + token_sha256(token).encode()


ANSWER_SIGNATURE = "x-outpost-signature"


def answer_message(body: bytes) -> bytes:
    """What the desktop key signs in a poll answer: the exact body bytes, which carry the
    agent's name and the nonce of the poll they answer (so an old answer cannot be replayed)."""
    return b"outpost-hub-answer\0" + body


def agent_path(agent: str, *rest: str) -> str:
    return "/".join((PREFIX, "agents", agent, *rest))
