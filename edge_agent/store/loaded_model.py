"""An installed model version: check its folder against the signed manifest, load it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import onnxruntime as ort

from edge_agent.contract.errors import (
    BundleMemberInvalid,
    ModelInvalid,
    SchemaError,
    VersionCorrupt,
)
from edge_agent.contract.manifest import (
    BASELINE,
    CANARY,
    CHALLENGER,
    MANIFEST,
    MODEL,
    SIGNATURE,
    Manifest,
    TensorSpec,
)
from edge_agent.contract.model_checks import (
    check_challenger,
    check_runtime_version,
    inspect_model,
    load_session,
)
from edge_agent.contract.records import Baseline, Canary
from edge_agent.contract.signing import PublicKey, verify_signature
from edge_agent.store.canary import run_canary

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Challenger:
    """The bundle's shadow model: run off the request path on `share` of requests."""

    version: int
    share: float
    session: ort.InferenceSession
    outputs: list[TensorSpec]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    session: ort.InferenceSession
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    baseline: Baseline | None
    manifest: Manifest
    path: Path
    challenger: Challenger | None = None


def _read(folder: Path, member: str) -> bytes:
    try:
        return (folder / member).read_bytes()
    except OSError as exc:
        raise VersionCorrupt(f"{folder.name}/{member} cannot be read: {exc.strerror}") from exc


def _check_streamed(path: Path, size: int, sha256: str, version: int) -> None:
    """model.onnx against its checksum, read in chunks: never held whole for this."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
            read = fh.tell()
    except OSError as exc:
        raise VersionCorrupt(f"{path.parent.name}/{path.name} cannot be read: "
                             f"{exc.strerror}") from exc
    if read != size or h.hexdigest() != sha256:
        raise VersionCorrupt(f"version {version}: {path.name} does not match its checksum")


def verified_members(
    folder: Path, name: str, version: int, keys: Sequence[PublicKey]
) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and signed members of an installed version, or VersionCorrupt.
    model.onnx, the large one, is checked by streaming and left on disk (not returned)."""
    manifest_bytes, signature = _read(folder, MANIFEST), _read(folder, SIGNATURE)
    if not any(verify_signature(k, signature, manifest_bytes) for k in keys):
        raise VersionCorrupt(f"version {version}: manifest signature does not verify")
    manifest = Manifest.from_json_bytes(manifest_bytes)
    if (manifest.model, manifest.version) != (name, version):
        raise VersionCorrupt(f"version {version}: folder holds {manifest.model} {manifest.version}")
    members = {}
    for member, digest in manifest.members.items():
        if member == MODEL:
            _check_streamed(folder / MODEL, digest.size, digest.sha256, version)
            continue
        data = _read(folder, member)
        if len(data) != digest.size or hashlib.sha256(data).hexdigest() != digest.sha256:
            raise VersionCorrupt(f"version {version}: {member} does not match its checksum")
        members[member] = data
    return manifest, members


def _check_signature_matches(manifest: Manifest, inputs: list[TensorSpec],
                             outputs: list[TensorSpec], opset: dict[str, int]) -> None:
    def names(specs: list[TensorSpec]) -> list[tuple[str, str]]:
        return [(t.name, t.datatype) for t in specs]

    if names(manifest.inputs) != names(inputs) or names(manifest.outputs) != names(outputs):
        raise ModelInvalid("manifest inputs/outputs do not match the model.onnx graph")
    if any(manifest.opset.get(d) != v for d, v in opset.items()):
        raise ModelInvalid("manifest opset does not match the model.onnx graph")


def _json_member(data: bytes, member: str) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleMemberInvalid(f"{member} is not valid JSON") from exc


def load_version(
    folder: Path,
    name: str,
    version: int,
    keys: Sequence[PublicKey],
    *,
    threads: int = 1,
    canary: bool = False,
) -> LoadedModel:
    """Verify, parse and load a version folder; with `canary`, also run its canary."""
    manifest, members = verified_members(folder, name, version, keys)
    check_runtime_version(manifest.min_onnxruntime)
    # Peak memory: the graph is parsed once to check it (file bytes + protobuf, ~2x the
    # model, freed), then onnxruntime loads the file itself (its protobuf + initializers).
    info = inspect_model((folder / MODEL).read_bytes())
    _check_signature_matches(manifest, info.inputs, info.outputs, info.opset)
    try:
        baseline = Baseline.from_dict(_json_member(members[BASELINE], BASELINE))
        canary_doc = Canary.from_dict(_json_member(members[CANARY], CANARY))
    except SchemaError as exc:
        raise BundleMemberInvalid(str(exc)) from exc
    challenger = _load_challenger(manifest, members, info.inputs)
    session = load_session(folder / MODEL, threads)  # checked above: no external data
    if canary:
        run_canary(session, canary_doc)
    return LoadedModel(name, version, session, info.inputs, info.outputs, baseline, manifest,
                       folder, challenger)


def with_challenger_of(current: LoadedModel, folder: Path,
                       keys: Sequence[PublicKey]) -> LoadedModel:
    """`current` with the challenger of `folder`, a verified copy of the same champion
    (the caller compared the manifests): the champion's session is kept, nothing reloads.
    Challengers have no canary of their own; their inputs are checked as at install."""
    manifest, members = verified_members(folder, current.name, current.version, keys)
    return replace(current, manifest=manifest, path=folder,
                   challenger=_load_challenger(manifest, members, current.inputs))


def _load_challenger(manifest: Manifest, members: dict[str, bytes],
                     inputs: list[TensorSpec]) -> Challenger | None:
    spec = manifest.challenger
    if spec is None:
        return None
    info = inspect_model(members[CHALLENGER])
    check_challenger(inputs, info.inputs)
    def names(specs: list[TensorSpec]) -> list[tuple[str, str]]:
        return [(t.name, t.datatype) for t in specs]

    if names(spec.outputs) != names(info.outputs):
        raise ModelInvalid("manifest challenger outputs do not match challenger.onnx")
    # One thread: the shadow must not take cores from the champion.
    return Challenger(spec.version, spec.share, load_session(members[CHALLENGER], 1),
                      info.outputs)
