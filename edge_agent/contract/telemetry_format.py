"""Telemetry records and the signed NDJSON export file carried from agent to desktop."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from edge_agent.contract.audit_events import AGENT_EVENT_KIND, AgentEventRecord
from edge_agent.contract.errors import KeyFileError, SchemaError, TelemetryFileError
from edge_agent.contract.signing import (
    atomic_write,
    public_key_b64,
    public_key_bytes,
    public_key_from_b64,
    verify_signature,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

EXPORT_FORMAT = "outpost-telemetry"
EXPORT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class RequestRecord:
    seq: int
    ts: float
    model: str
    version: int
    status: int
    latency_us: int
    rows: int
    kind: str = "request"


@dataclass(frozen=True)
class HistogramRecord:
    seq: int
    window_start: float
    window_end: float
    model: str
    version: int
    feature: str
    counts: list[int]
    nulls: int
    kind: str = "histogram"


@dataclass(frozen=True)
class EvictedRecord:
    seq: int
    ts: float
    count: int
    first_seq: int
    last_seq: int
    kind: str = "evicted"


@dataclass(frozen=True)
class ShadowRecord:
    """One window of a challenger run in shadow beside champion `version`."""

    seq: int
    window_start: float
    window_end: float
    model: str
    version: int
    challenger: int
    count: int  # requests the challenger ran on
    rows: int  # rows compared
    agreed: int
    dropped: int  # jobs dropped because the shadow queue was full
    timeouts: int
    errors: int
    latency_us: int  # sum over `count` calls
    counts: list[int]  # challenger latency histogram (serving.shadow.LATENCY_EDGES_US)
    divergence: str  # JSON {champion class: rows where the challenger disagreed}
    kind: str = "shadow"



@dataclass(frozen=True)
class PredictionRecord:
    """Rows answered by one model version in one flush: id, answer (as text) and time."""

    seq: int
    ts: float
    model: str
    version: int
    ids: list[str]
    predicted: list[str]
    times: list[float]
    kind: str = "prediction"


@dataclass(frozen=True)
class FeedbackRecord:
    """Ground-truth labels posted to the agent for earlier prediction ids."""

    seq: int
    ts: float
    model: str
    ids: list[str]
    labels: list[str]
    kind: str = "feedback"


@dataclass(frozen=True)
class CaptureRecord:
    """One captured row: its inputs (a JSON object), the answer, its id and why it was kept."""

    seq: int
    ts: float
    model: str
    version: int
    id: str
    reason: str
    inputs: str
    prediction: str
    kind: str = "capture"


TelemetryRecord = (RequestRecord | HistogramRecord | EvictedRecord | PredictionRecord
                   | FeedbackRecord | CaptureRecord | AgentEventRecord | ShadowRecord)
_KINDS: dict[str, type[TelemetryRecord]] = {
    "request": RequestRecord,
    "histogram": HistogramRecord,
    "evicted": EvictedRecord,
    "prediction": PredictionRecord,
    "feedback": FeedbackRecord,
    "capture": CaptureRecord,
    AGENT_EVENT_KIND: AgentEventRecord,
    "shadow": ShadowRecord,
}
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "str": str,
    "list[int]": list,
    "list[str]": list,
    "list[float]": list,
}
_ITEM_TYPES: dict[str, type | tuple[type, ...]] = {
    "list[int]": int, "list[str]": str, "list[float]": (int, float)}


def record_to_dict(record: TelemetryRecord) -> dict[str, Any]:
    return asdict(record)


def record_from_dict(doc: Mapping[str, Any]) -> TelemetryRecord:
    """Check a record's fields and types; extra keys are ignored for forward compatibility."""
    cls = _KINDS.get(str(doc.get("kind")))
    if cls is None:
        raise SchemaError(f"telemetry record kind {doc.get('kind')!r} is unknown")
    values: dict[str, Any] = {}
    for name, f in cls.__dataclass_fields__.items():
        value = doc.get(name)
        expected = _FIELD_TYPES.get(str(f.type))
        ok = expected is not None and isinstance(value, expected) and not isinstance(value, bool)
        if ok and isinstance(value, list):
            item = _ITEM_TYPES[str(f.type)]
            ok = all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        if not ok and name != "kind":
            raise SchemaError(f"telemetry {doc.get('kind')} record: bad or missing {name}")
        values[name] = value
    return cls(**values)


@dataclass(frozen=True)
class TelemetryExportHeader:
    agent_id: str
    agent_public_key: str
    created: str
    format: str = EXPORT_FORMAT
    format_version: int = EXPORT_FORMAT_VERSION

    @property
    def public_key(self) -> Ed25519PublicKey:
        return public_key_from_b64(self.agent_public_key)


def _line(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(doc) + b"\n"


def write_telemetry_export(
    path: Path,
    records: Iterable[TelemetryRecord | Mapping[str, Any]],
    *,
    agent_id: str,
    identity_key: Ed25519PrivateKey,
    created: str | None = None,
) -> Path:
    """Write header, records, end line and a signature line over everything before it."""
    header = TelemetryExportHeader(
        agent_id=agent_id,
        agent_public_key=public_key_b64(identity_key),
        created=created or datetime.now(UTC).isoformat(timespec="seconds"),
    )
    body = bytearray(_line(asdict(header)))
    digest, n = hashlib.sha256(), 0
    for rec in records:
        line = _line(record_to_dict(rec) if not isinstance(rec, Mapping) else dict(rec))
        digest.update(line)
        body += line
        n += 1
    body += _line({"end": True, "records": n, "sha256": digest.hexdigest()})
    signature = identity_key.sign(bytes(body))
    body += _line({"signature": base64.b64encode(signature).decode("ascii")})
    return atomic_write(Path(path), bytes(body))


def read_telemetry_export(
    path: Path, expected_key: Ed25519PublicKey | None = None
) -> tuple[TelemetryExportHeader, list[TelemetryRecord]]:
    """Read and check an export file: signature, record count, digest and record schemas.

    With `expected_key`, a file signed by any other agent key is refused."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TelemetryFileError(f"cannot read {path}: {exc.strerror}") from exc
    lines = data.split(b"\n")
    if len(lines) < 4 or lines[-1] != b"":
        raise TelemetryFileError(f"{path} is truncated or not a telemetry export")
    header = _parse_header(_json(lines[0], "header"))
    sig_doc = _json(lines[-2], "signature line")
    try:
        signature = base64.b64decode(str(sig_doc.get("signature")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TelemetryFileError("telemetry export is truncated (no signature line)") from exc
    signed = data[: len(data) - len(lines[-2]) - 1]
    if expected_key is not None and public_key_bytes(expected_key) != public_key_bytes(
        header.public_key
    ):
        raise TelemetryFileError(f"telemetry export is from an unknown agent ({header.agent_id})")
    if not verify_signature(header.public_key, signature, signed):
        raise TelemetryFileError("telemetry export signature does not match: file is corrupt")
    end = _json(lines[-3], "end line")
    body = lines[1:-3]
    if end.get("end") is not True or end.get("records") != len(body):
        raise TelemetryFileError("telemetry export end line does not match its records")
    digest = hashlib.sha256()
    for line in body:
        digest.update(line + b"\n")
    if digest.hexdigest() != end.get("sha256"):
        raise TelemetryFileError("telemetry export records do not match their digest")
    try:
        records = [record_from_dict(_json(line, "record")) for line in body]
    except SchemaError as exc:
        raise TelemetryFileError(f"telemetry export: {exc}") from exc
    return header, records


def _json(line: bytes, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise TelemetryFileError(f"telemetry export {what} is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise TelemetryFileError(f"telemetry export {what} is not a JSON object")
    return doc


def _parse_header(doc: dict[str, Any]) -> TelemetryExportHeader:
    if doc.get("format") != EXPORT_FORMAT:
        raise TelemetryFileError("not an Outpost telemetry export (bad header)")
    if doc.get("format_version") != EXPORT_FORMAT_VERSION:
        raise TelemetryFileError(
            f"telemetry export format_version {doc.get('format_version')!r} is not supported"
        )
    fields = ("agent_id", "agent_public_key", "created")
    if not all(isinstance(doc.get(k), str) for k in fields):
        raise TelemetryFileError("telemetry export header misses agent_id, key or created")
    header = TelemetryExportHeader(*(doc[k] for k in fields))
    try:
        header.public_key  # noqa: B018 -- parse now so a bad key is a file error
    except (KeyFileError, ValueError) as exc:
        raise TelemetryFileError("telemetry export header has an invalid public key") from exc
    return header
