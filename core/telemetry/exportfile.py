"""Checking an agent's telemetry export file before any of it is read into the catalog.

The file (see ``edge_agent.contract.protocol.write_telemetry_export``) is a header line,
the records, an end line and a signature line over everything before it. The
header names the agent's identity key; the signature by that key covers every
record byte, so one Ed25519 check replaces parsing each record in Python: the
records themselves are then parsed by DuckDB in bulk.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.errors import InvalidInput
from edge_agent.contract.protocol import (
    KeyFileError,
    public_key_from_b64,
    verify_signature,
)

EXPORT_FORMAT = "outpost-telemetry"
EXPORT_FORMAT_VERSION = 1


class TelemetryFileInvalid(InvalidInput):
    """A telemetry file is corrupt, truncated, or not from an enrolled agent."""


@dataclass(frozen=True)
class ExportHeader:
    path: Path
    agent_id: str
    public_key: str  # base64, as in the agent table
    created: str


@dataclass(frozen=True)
class VerifiedExport:
    header: ExportHeader
    records: int  # as the end line states; the ingest checks it parsed exactly that many


def _json_line(line: bytes, what: str, path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise TelemetryFileInvalid(f"telemetry file {path.name}: {what} is not a JSON object")
    return doc


def read_header(path: Path) -> ExportHeader:
    """The first line only: who says they wrote the file."""
    try:
        with path.open("rb") as fh:
            first = fh.readline(64 * 1024)
    except OSError as exc:
        raise TelemetryFileInvalid(f"cannot read telemetry file {path}: {exc.strerror}") from exc
    if not first.endswith(b"\n"):
        raise TelemetryFileInvalid(f"{path.name} is not an Outpost telemetry export")
    doc = _json_line(first, "header", path)
    if doc.get("format") != EXPORT_FORMAT:
        raise TelemetryFileInvalid(f"{path.name} is not an Outpost telemetry export")
    if doc.get("format_version") != EXPORT_FORMAT_VERSION:
        raise TelemetryFileInvalid(
            f"{path.name}: telemetry format_version {doc.get('format_version')!r} is not supported")
    fields = [doc.get(k) for k in ("agent_id", "agent_public_key", "created")]
    if not all(isinstance(f, str) for f in fields):
        raise TelemetryFileInvalid(f"{path.name}: telemetry header misses agent_id, key or created")
    return ExportHeader(path, str(fields[0]), str(fields[1]), str(fields[2]))


def verify_export(path: Path, header: ExportHeader) -> VerifiedExport:
    """Check the signature over the whole file with the key the header names.

    The caller has already matched that key to an enrolled agent."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TelemetryFileInvalid(f"cannot read telemetry file {path}: {exc.strerror}") from exc
    truncated = TelemetryFileInvalid(f"telemetry file {path.name} is truncated")
    if not data.endswith(b"\n"):
        raise truncated
    sig_start = data.rfind(b"\n", 0, len(data) - 1) + 1
    end_start = data.rfind(b"\n", 0, max(sig_start - 1, 0)) + 1
    if sig_start <= 0 or end_start <= 0:
        raise truncated
    sig_doc = _json_line(data[sig_start:-1], "last line", path)
    end_doc = _json_line(data[end_start:sig_start - 1], "end line", path)
    if "signature" not in sig_doc or end_doc.get("end") is not True:
        raise truncated
    try:
        signature = base64.b64decode(str(sig_doc["signature"]), validate=True)
        key = public_key_from_b64(header.public_key)
    except (binascii.Error, ValueError, KeyFileError) as exc:
        raise TelemetryFileInvalid(f"telemetry file {path.name} is corrupt: {exc}") from exc
    signed = memoryview(data)[:sig_start]  # no copy of a file that may be hundreds of MB
    if not verify_signature(key, signature, signed):  # type: ignore[arg-type]
        raise TelemetryFileInvalid(
            f"telemetry file {path.name} is corrupt: its signature does not match its content")
    records = end_doc.get("records")
    if not isinstance(records, int) or isinstance(records, bool) or records < 0:
        raise TelemetryFileInvalid(f"telemetry file {path.name}: end line has no record count")
    return VerifiedExport(header, records)
