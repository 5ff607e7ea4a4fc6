"""The contract between desktop and agent: bundles, signing keys, key rotation records,
baseline/canary schemas and telemetry records. `core` imports everything from here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.contract.bundle_checks import (
    BundleLimits,
    VerifiedBundle,
    extract_bundle,
    read_bundle_manifest,
    verify_bundle,
)
from edge_agent.contract.errors import (
    AgentError,
    BundleCorrupt,
    BundleError,
    BundleManifestInvalid,
    BundleMemberHashMismatch,
    BundleMemberInvalid,
    BundleMissingMember,
    BundleSignatureInvalid,
    BundleTooLarge,
    BundleUnknownKey,
    BundleUnknownMember,
    BundleUnsafeMember,
    BundleZipBomb,
    KeyFileError,
    KeyRotationError,
    SchemaError,
    TelemetryFileError,
)
from edge_agent.contract.files import atomic_write
from edge_agent.contract.manifest import (
    BASELINE,
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    BUNDLE_MEMBERS,
    CANARY,
    CHALLENGER,
    MANIFEST,
    MODEL,
    SIGNATURE,
    ChallengerSpec,
    Manifest,
    MemberDigest,
    TensorSpec,
    check_model_name,
)
from edge_agent.contract.records import PREDICTION_FEATURE, Baseline, Canary, FeatureBaseline
from edge_agent.contract.signing import (
    PublicKey,
    generate_signing_key,
    key_fingerprint,
    load_private_key,
    load_public_key,
    public_key_b64,
    public_key_bytes,
    public_key_from_b64,
    save_private_key,
    verify_signature,
    write_public_key,
)
from edge_agent.contract.telemetry_format import (
    EvictedRecord,
    HistogramRecord,
    RequestRecord,
    TelemetryExportHeader,
    TelemetryRecord,
    read_telemetry_export,
    record_from_dict,
    record_to_dict,
    write_telemetry_export,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


def __getattr__(name: str) -> Any:
    """The key classes, re-exported without importing cryptography until asked for
    (edge_agent/contract/signing.py: a serving agent does not load it)."""
    if name in ("Ed25519PrivateKey", "Ed25519PublicKey"):
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return getattr(ed25519, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_MIN_ONNXRUNTIME = "1.17.0"
# Fixed zip timestamps: the same inputs give the same bundle bytes (content addressing).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _json_member(value: Mapping[str, Any] | Baseline | Canary, what: str) -> bytes:
    doc = value.to_dict() if isinstance(value, Baseline | Canary) else dict(value)
    try:
        if what == BASELINE:
            Baseline.from_dict(doc)
        else:
            Canary.from_dict(doc)
    except SchemaError as exc:
        raise BundleMemberInvalid(str(exc)) from exc
    return json.dumps(doc, sort_keys=True, allow_nan=False).encode("utf-8")


def _digest(data: bytes) -> MemberDigest:
    return MemberDigest(hashlib.sha256(data).hexdigest(), len(data))


def write_bundle(
    out_path: Path,
    *,
    model: str,
    version: int,
    model_bytes: bytes,
    baseline: Mapping[str, Any] | Baseline,
    canary: Mapping[str, Any] | Canary,
    key: Ed25519PrivateKey,
    inputs: list[TensorSpec] | None = None,
    outputs: list[TensorSpec] | None = None,
    opset: dict[str, int] | None = None,
    task: str | None = None,
    labels: list[str | int] | None = None,
    built_by: str = "outpost 0.1.0",
    created: str | None = None,
    min_onnxruntime: str = DEFAULT_MIN_ONNXRUNTIME,
    challenger: tuple[int, bytes, float] | None = None,
    capture: Mapping[str, Any] | None = None,
) -> Path:
    """Build and sign `NAME-VERSION.outpost`. Inputs, outputs and opset default to what the
    ONNX graph declares; `capture` is an optional sample-capture policy. The file appears
    atomically (temp file, fsync, rename).

    `challenger` (version, model bytes, shadow share) adds a signed challenger member; its
    inputs must be the champion's (the agent checks again)."""
    from edge_agent.contract.capture import CAPTURE_KEY, CapturePolicy

    if inputs is None or outputs is None or opset is None:
        from edge_agent.contract.model_checks import inspect_model  # onnx is only needed here

        info = inspect_model(model_bytes, check_opset=False)
        inputs = info.inputs if inputs is None else inputs
        outputs = info.outputs if outputs is None else outputs
        opset = info.opset if opset is None else opset
    members = {
        MODEL: model_bytes,
        BASELINE: _json_member(baseline, BASELINE),
        CANARY: _json_member(canary, CANARY),
    }
    spec = None
    if challenger is not None:
        from edge_agent.contract.model_checks import check_challenger, inspect_model

        c_version, c_bytes, share = challenger
        c_info = inspect_model(c_bytes, check_opset=False)
        check_challenger(list(inputs), c_info.inputs)
        spec = ChallengerSpec(c_version, share, c_info.outputs)
        members[CHALLENGER] = c_bytes
    manifest = Manifest(
        model=check_model_name(model),
        version=version,
        created=created or datetime.now(UTC).isoformat(timespec="seconds"),
        built_by=built_by,
        members={name: _digest(data) for name, data in members.items()},
        inputs=list(inputs),
        outputs=list(outputs),
        opset=dict(opset),
        min_onnxruntime=min_onnxruntime,
        task=task,
        labels=labels,
        key_id=key_fingerprint(key),
        challenger=spec,
        extra={} if capture is None else {
            CAPTURE_KEY: CapturePolicy.from_dict(dict(capture)).to_dict()},
    )
    manifest_bytes = manifest.to_json_bytes()
    Manifest.from_json_bytes(manifest_bytes)  # what the agent will check, checked here first
    return atomic_write(Path(out_path), zip_members({
        MANIFEST: manifest_bytes,
        SIGNATURE: key.sign(manifest_bytes),
        **members,
    }))


def _compressible(data: bytes) -> bool:
    """Dense float weights barely deflate; storing them makes bundles quicker to write and
    to verify. Decided on a sample, so the same bytes always zip the same way."""
    sample = data[: 1 << 20]
    return len(zlib.compress(sample, 1)) < 0.9 * len(sample)


def zip_members(members: Mapping[str, bytes]) -> bytes:
    """Zip bytes with fixed timestamps and modes, in the given member order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name == MODEL and not _compressible(data):
                info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data, compresslevel=1 if name == MODEL else 6)
    return buf.getvalue()


# --- key rotation ---------------------------------------------------------------------

ROTATION_FORMAT = "outpost-key-rotation"
_ROTATION_CONTEXT = b"outpost-key-rotation\x00"


@dataclass(frozen=True)
class RotationRecord:
    rotation: int
    old_key: Ed25519PublicKey
    new_key: Ed25519PublicKey


def _rotation_payload(rotation: int, old_b64: str, new_b64: str) -> bytes:
    record = {"rotation": rotation, "old_key": old_b64, "new_key": new_b64}
    return _ROTATION_CONTEXT + json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def make_rotation_record(old_key: Ed25519PrivateKey, new_key: Ed25519PrivateKey, n: int) -> bytes:
    """A record moving trust from `old_key` to `new_key`, signed by both; `n` must be the
    agent's current rotation number plus one."""
    old_b64, new_b64 = public_key_b64(old_key), public_key_b64(new_key)
    payload = _rotation_payload(n, old_b64, new_b64)
    doc = {
        "format": ROTATION_FORMAT,
        "rotation": n,
        "old_key": old_b64,
        "new_key": new_b64,
        "old_signature": base64.b64encode(old_key.sign(payload)).decode("ascii"),
        "new_signature": base64.b64encode(new_key.sign(payload)).decode("ascii"),
    }
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def parse_rotation_record(data: bytes) -> tuple[RotationRecord, bytes, bytes]:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != ROTATION_FORMAT:
            raise KeyRotationError("not an Outpost key rotation record")
        n = doc["rotation"]
        if not isinstance(n, int) or isinstance(n, bool):
            raise KeyRotationError("rotation record: rotation must be an integer")
        record = RotationRecord(
            n, public_key_from_b64(doc["old_key"]), public_key_from_b64(doc["new_key"])
        )
        old_sig = base64.b64decode(doc["old_signature"], validate=True)
        new_sig = base64.b64decode(doc["new_signature"], validate=True)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise KeyRotationError("rotation record is not JSON with the required fields") from exc
    except (KeyFileError, binascii.Error, ValueError) as exc:
        raise KeyRotationError(f"rotation record has a bad key or signature: {exc}") from exc
    return record, old_sig, new_sig


def verify_rotation_record(
    data: bytes, *, current_rotation: int, trusted: Sequence[PublicKey]
) -> RotationRecord:
    """Accept only rotation `current_rotation + 1`, from a trusted key, signed by both keys."""
    record, old_sig, new_sig = parse_rotation_record(data)
    if record.rotation != current_rotation + 1:
        raise KeyRotationError(
            f"rotation number {record.rotation} refused: expected {current_rotation + 1}"
        )
    old_raw, new_raw = public_key_bytes(record.old_key), public_key_bytes(record.new_key)
    if old_raw == new_raw:
        raise KeyRotationError("rotation record names the same key twice")
    if old_raw not in {public_key_bytes(k) for k in trusted}:
        raise KeyRotationError(
            f"rotation record's old key {key_fingerprint(record.old_key)} is not trusted here"
        )
    payload = _rotation_payload(
        record.rotation, public_key_b64(record.old_key), public_key_b64(record.new_key)
    )
    if not verify_signature(record.old_key, old_sig, payload):
        raise KeyRotationError("rotation record: the old key's signature is invalid")
    if not verify_signature(record.new_key, new_sig, payload):
        raise KeyRotationError("rotation record: the new key's signature is invalid")
    return record


__all__ = [
    "BASELINE", "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "BUNDLE_MEMBERS", "CANARY",
    "DEFAULT_MIN_ONNXRUNTIME", "MANIFEST", "MODEL", "PREDICTION_FEATURE", "SIGNATURE",
    "AgentError", "Baseline", "BundleCorrupt", "BundleError", "BundleLimits",
    "BundleManifestInvalid", "BundleMemberHashMismatch", "BundleMemberInvalid",
    "BundleMissingMember", "BundleSignatureInvalid", "BundleTooLarge", "BundleUnknownKey",
    "BundleUnknownMember", "BundleUnsafeMember", "BundleZipBomb", "Canary", "EvictedRecord",
    "FeatureBaseline", "HistogramRecord", "KeyFileError", "KeyRotationError", "Manifest",
    "MemberDigest", "RequestRecord", "RotationRecord", "SchemaError", "TelemetryExportHeader",
    "TelemetryFileError", "TelemetryRecord", "TensorSpec", "VerifiedBundle", "atomic_write",
    "check_model_name", "extract_bundle", "generate_signing_key", "key_fingerprint",
    "load_private_key", "load_public_key", "make_rotation_record", "parse_rotation_record",
    "public_key_b64", "public_key_bytes", "public_key_from_b64", "read_bundle_manifest",
    "read_telemetry_export", "record_from_dict", "record_to_dict", "save_private_key",
    "verify_bundle", "verify_rotation_record", "verify_signature", "write_bundle",
    "write_public_key", "write_telemetry_export", "zip_members",
]
