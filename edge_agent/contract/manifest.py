"""The bundle manifest: what manifest.json holds and how it is checked."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from edge_agent.contract.errors import BundleManifestInvalid

BUNDLE_FORMAT = "outpost-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MODEL = "model.onnx"
BASELINE = "baseline.json"
CANARY = "canary.json"
# Optional: a challenger model run in shadow beside the champion (see docs/agent.md).
CHALLENGER = "challenger.onnx"
SIGNED_MEMBERS = (MODEL, BASELINE, CANARY)
BUNDLE_MEMBERS = (MANIFEST, SIGNATURE, *SIGNED_MEMBERS)
OPTIONAL_MEMBERS = (CHALLENGER,)
OIP_DATATYPES = frozenset(
    "BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64 BYTES".split()
)
TASKS = frozenset({"classification", "regression"})
MAX_VERSION = 2**31 - 1  # model versions, everywhere (agent, hub, catalog)
# Model names become folder names on the device: keep them boring.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
# Manifest fields that say how a bundle was made, not what its champion serves.
_BUILD_FACTS = ("created", "built_by", "key_id", "challenger")


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise BundleManifestInvalid(
            f"model name {name!r} must be 1-100 letters, digits, '_', '.', '-' "
            "and start with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class MemberDigest:
    sha256: str
    size: int


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ChallengerSpec:
    """A second model in the bundle, run in shadow on `share` of the requests."""

    version: int
    share: float
    outputs: list[TensorSpec]
    member: str = CHALLENGER

    def to_dict(self) -> dict[str, Any]:
        return {"member": self.member, "version": self.version, "share": self.share,
                "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, doc: object) -> ChallengerSpec:
        if not isinstance(doc, dict):
            raise BundleManifestInvalid("manifest challenger must be an object")
        if doc.get("member") != CHALLENGER:
            raise BundleManifestInvalid(f"manifest challenger member must be {CHALLENGER!r}")
        version, share = doc.get("version"), doc.get("share")
        if not _is_int(version) or version < 1:
            raise BundleManifestInvalid("manifest challenger version must be an integer >= 1")
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share <= 1:
            raise BundleManifestInvalid("manifest challenger share must be in (0, 1]")
        return cls(version, float(share), _tensors(doc.get("outputs"), "challenger outputs"))


@dataclass(frozen=True)
class Manifest:
    model: str
    version: int
    created: str
    built_by: str
    members: dict[str, MemberDigest]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int]
    min_onnxruntime: str
    task: str | None = None
    labels: list[str | int] | None = None
    # Fingerprint of the signing key, so "unknown key" and "bad signature" differ.
    key_id: str | None = None
    challenger: ChallengerSpec | None = None
    format: str = BUNDLE_FORMAT
    format_version: int = BUNDLE_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = dict(self.extra)
        doc.update(
            format=self.format,
            format_version=self.format_version,
            model=self.model,
            version=self.version,
            created=self.created,
            built_by=self.built_by,
            members={k: {"sha256": m.sha256, "size": m.size} for k, m in self.members.items()},
            inputs=[t.to_dict() for t in self.inputs],
            outputs=[t.to_dict() for t in self.outputs],
            opset=dict(self.opset),
            min_onnxruntime=self.min_onnxruntime,
            task=self.task,
            labels=self.labels,
        )
        if self.key_id is not None:
            doc["key_id"] = self.key_id
        if self.challenger is not None:
            doc["challenger"] = self.challenger.to_dict()
        return doc

    @property
    def member_names(self) -> tuple[str, ...]:
        """Every member the bundle holds, signed ones after manifest and signature."""
        return (*BUNDLE_MEMBERS, *(m for m in OPTIONAL_MEMBERS if m in self.members))

    def champion_part(self) -> dict[str, Any]:
        """What defines the version: everything but the challenger and the bundle's own
        build facts (when, by what, under which key it was signed). Two bundles of one
        version with equal parts serve the same champion (member sha256s included)."""
        doc = self.to_dict()
        for key in _BUILD_FACTS:
            doc.pop(key, None)
        doc["members"] = {k: v for k, v in doc["members"].items() if k != CHALLENGER}
        return doc

    def challenger_part(self) -> tuple[dict[str, Any] | None, MemberDigest | None]:
        """The challenger's spec and member digest (None, None without one)."""
        spec = None if self.challenger is None else self.challenger.to_dict()
        return spec, self.members.get(CHALLENGER)

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_json_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleManifestInvalid(f"manifest.json is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise BundleManifestInvalid("manifest.json must be a JSON object")
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        if doc.get("format") != BUNDLE_FORMAT:
            raise BundleManifestInvalid(f"manifest format is not {BUNDLE_FORMAT!r}")
        if doc.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise BundleManifestInvalid(
                f"manifest format_version {doc.get('format_version')!r} is not supported "
                f"(this agent reads {BUNDLE_FORMAT_VERSION})"
            )
        version = check_version(doc.get("version"), "manifest version")
        task = doc.get("task")
        if task is not None and task not in TASKS:
            raise BundleManifestInvalid(f"manifest task {task!r} is not one of {sorted(TASKS)}")
        key_id = doc.get("key_id")
        if key_id is not None and not isinstance(key_id, str):
            raise BundleManifestInvalid("manifest key_id must be a string")
        known = set(cls.__dataclass_fields__) - {"extra"}
        challenger = (None if doc.get("challenger") is None
                      else ChallengerSpec.from_dict(doc["challenger"]))
        return cls(
            model=check_model_name(doc.get("model")),
            version=version,
            created=_str(doc, "created"),
            built_by=_str(doc, "built_by"),
            members=_members(doc.get("members"), challenger is not None),
            inputs=_tensors(doc.get("inputs"), "inputs"),
            outputs=_tensors(doc.get("outputs"), "outputs"),
            opset=_opset(doc.get("opset")),
            min_onnxruntime=_str(doc, "min_onnxruntime"),
            task=task,
            labels=_labels(doc.get("labels")),
            key_id=key_id,
            challenger=challenger,
            extra={k: v for k, v in doc.items() if k not in known},
        )


def check_version(value: object, what: str = "version") -> int:
    """A model version: an integer in [1, MAX_VERSION] (it must fit every int column and
    JSON reader on the way: SQLite, DuckDB INTEGER, orjson)."""
    if not _is_int(value) or not 1 <= value <= MAX_VERSION:
        raise BundleManifestInvalid(f"{what} must be an integer from 1 to {MAX_VERSION}")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise BundleManifestInvalid(f"manifest {key} must be a string")
    return value


def _members(value: object, challenger: bool = False) -> dict[str, MemberDigest]:
    expected = [*SIGNED_MEMBERS, CHALLENGER] if challenger else list(SIGNED_MEMBERS)
    if not isinstance(value, dict) or set(value) != set(expected):
        raise BundleManifestInvalid(f"manifest members must be exactly {expected}")
    out: dict[str, MemberDigest] = {}
    for name, entry in value.items():
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or not _HEX64_RE.fullmatch(sha):
            raise BundleManifestInvalid(f"manifest member {name} needs a lowercase hex sha256")
        if not _is_int(size) or size < 0:
            raise BundleManifestInvalid(f"manifest member {name} needs a size >= 0")
        out[name] = MemberDigest(sha, size)
    return out


def _tensors(value: object, what: str) -> list[TensorSpec]:
    if not isinstance(value, list) or not value:
        raise BundleManifestInvalid(f"manifest {what} must be a non-empty list")
    out: list[TensorSpec] = []
    for item in value:
        if not isinstance(item, dict):
            raise BundleManifestInvalid(f"manifest {what} entries must be objects")
        name, dtype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not name:
            raise BundleManifestInvalid(f"manifest {what} entry without a name")
        if dtype not in OIP_DATATYPES:
            raise BundleManifestInvalid(f"manifest {what} {name}: unknown datatype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= -1 for d in shape):
            raise BundleManifestInvalid(f"manifest {what} {name}: shape must be ints >= -1")
        out.append(TensorSpec(name, dtype, list(shape)))
    if len({t.name for t in out}) != len(out):
        raise BundleManifestInvalid(f"manifest {what} names are not unique")
    return out


def _opset(value: object) -> dict[str, int]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and _is_int(v) and v >= 1 for k, v in value.items()
    ):
        raise BundleManifestInvalid("manifest opset must map domain names to versions >= 1")
    return dict(value)


def _labels(value: object) -> list[str | int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, str) or _is_int(v) for v in value
    ):
        raise BundleManifestInvalid("manifest labels must be a list of strings or integers")
    return list(value)
