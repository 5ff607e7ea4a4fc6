"""The evidence pack: the whole chain as JSON lines, its head signed by the desktop key.

Line 1 is a header naming the format and carrying the desktop's public key and its
fingerprint; then one line per entry (every column, both hashes); then an end line
with the entry count and the chain head; then a signature line: the desktop key's
Ed25519 signature over the header and end line. Anyone holding the pack alone can
recompute every hash and agent signature and check the head's signature against the
embedded key; pass the expected public key (``outpost keys show --out``) to also
prove the pack came from that desktop.
"""
from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.audit.chain import COLUMNS, SELECT, ChainCheck, canonical, row_entry, verify_rows
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound, StorageError
from core.keys import signing_key
from edge_agent.contract.errors import KeyFileError
from edge_agent.contract.protocol import (
    atomic_write,
    key_fingerprint,
    public_key_b64,
    public_key_bytes,
    public_key_from_b64,
)
from edge_agent.contract.signing import verify_signature

PACK_FORMAT = "outpost-audit"
PACK_VERSION = 1
_DOMAIN = b"outpost-audit-pack/1\n"


class PackInvalid(InvalidInput):
    """The evidence pack does not verify."""


def _signed_bytes(header: dict[str, Any], end: dict[str, Any]) -> bytes:
    return _DOMAIN + canonical(header) + b"\n" + canonical(end)


def export_pack(catalog: Catalog, out: Path) -> dict[str, Any]:
    """Write the pack; returns {"path", "entries", "head", "fingerprint"}."""
    key = signing_key(catalog)
    header = {"format": PACK_FORMAT, "format_version": PACK_VERSION,
              "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "public_key": public_key_b64(key), "fingerprint": key_fingerprint(key)}
    cur = catalog.cursor()
    cur.execute(f"SELECT {SELECT} FROM audit_event ORDER BY position")
    lines = [canonical(header)]
    head, n = None, 0
    while batch := cur.fetchmany(10_000):
        for row in batch:
            entry, prev, digest = row_entry(row)
            lines.append(canonical({**entry, "prev_hash": prev, "hash": digest}))
            head, n = digest, n + 1
    check = verify_rows(row_entry(_row(orjson.loads(line))) for line in lines[1:])
    if not check.ok:
        raise PackInvalid(f"the catalog's audit chain is broken at entry {check.bad_position} "
                          f"({check.reason}): not exporting it")
    end = {"end": True, "entries": n, "head": head or check.head}
    signature = key.sign(_signed_bytes(header, end))
    lines += [canonical(end), canonical({"signature": base64.b64encode(signature).decode()})]
    try:
        atomic_write(Path(out), b"\n".join(lines) + b"\n")
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror}") from exc
    return {"path": str(out), "entries": n, "head": end["head"],
            "fingerprint": header["fingerprint"]}


def _row(doc: dict[str, Any]) -> tuple[Any, ...]:
    return (*(doc.get(c) for c in COLUMNS), doc.get("prev_hash"), doc.get("hash"))


def _json_line(line: bytes, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise PackInvalid(f"evidence pack {what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise PackInvalid(f"evidence pack {what} is not a JSON object")
    return doc


def verify_pack(path: Path, expected_key: Ed25519PublicKey | None = None) -> ChainCheck:
    """Check a pack on its own: format, every hash and agent signature, the end line and
    the head's signature (against `expected_key` too, when given)."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"evidence pack {path} does not exist")
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
    if len(lines) < 4 or lines[-1] != b"":
        raise PackInvalid(f"{path.name} is truncated or not an audit evidence pack")
    header = _json_line(lines[0], "header")
    if header.get("format") != PACK_FORMAT or header.get("format_version") != PACK_VERSION:
        raise PackInvalid(f"{path.name} is not an Outpost audit evidence pack (version 1)")
    try:
        key = public_key_from_b64(str(header.get("public_key")))
    except (KeyFileError, ValueError):
        raise PackInvalid("evidence pack header has an invalid public key") from None
    if header.get("fingerprint") != key_fingerprint(key):
        raise PackInvalid("evidence pack fingerprint does not match its public key")
    if expected_key is not None and public_key_bytes(expected_key) != public_key_bytes(key):
        raise PackInvalid(f"evidence pack was signed by key {header['fingerprint']}, "
                          f"not the expected {key_fingerprint(expected_key)}")
    end = _json_line(lines[-3], "end line")
    try:
        signature = base64.b64decode(str(_json_line(lines[-2], "signature line")
                                         .get("signature")), validate=True)
    except (binascii.Error, ValueError):
        raise PackInvalid("evidence pack signature line is malformed") from None
    if not verify_signature(key, signature, _signed_bytes(header, end)):
        raise PackInvalid("evidence pack head signature does not match: "
                          "its header or end line was altered")
    body = lines[1:-3]
    check = verify_rows(row_entry(_row(_json_line(line, f"entry line {i}")))
                        for i, line in enumerate(body, 1))
    if check.ok and (end.get("entries") != check.entries or end.get("head") != check.head):
        return ChainCheck(False, check.entries, check.head, check.entries + 1
                          if end.get("entries", 0) > check.entries else check.entries,
                          "the entries do not end at the signed head "
                          f"({end.get('entries')} signed, {check.entries} present)")
    return check
