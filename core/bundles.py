"""Signed bundles from model versions: model.onnx, baseline.json, canary.json, manifest.

The baseline comes from the run's training data version (DuckDB, in place over
its Parquet object), the canary from the run's holdout rows run through
onnxruntime here, so the device must reproduce these outputs before it serves.
Bundles are stored in the object store and remembered per model version with
the key that signed them; a key rotation makes the next build sign afresh.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from core.audit import record_event
from core.baselines import FeatureSpec, compute_baseline, prediction_baseline
from core.catalog import Catalog
from core.datasets import read_frame, resolve_version, version_path
from core.errors import InvalidInput, StorageError
from core.feeds import frame_feeds, is_categorical, json_columns, outputs_json
from core.keys import signing_key
from core.progress import CancelToken, ProgressFn, check, report
from core.registry import ModelVersion, resolve_model, tensor_inputs
from core.registry.runtime import load_session
from core.training import get_run, holdout_frame
from edge_agent.contract.errors import ModelInvalid
from edge_agent.contract.model_checks import check_challenger, inspect_model
from edge_agent.contract.protocol import Baseline, key_fingerprint, write_bundle

DEFAULT_SHADOW_SHARE = 0.5

CANARY_ROWS = 16
# The prediction distribution is estimated on at most this many training rows.
PREDICTION_SAMPLE = 200_000
_MIN_ORT = ((20, "1.17.0"), (21, "1.18.0"), (22, "1.20.0"), (23, "1.22.0"))


@dataclass(frozen=True)
class BuiltBundle:
    model: str
    version: int
    path: Path
    sha256: str
    key_id: str
    baseline: dict[str, Any]
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "path": str(self.path),
                "sha256": self.sha256, "key_id": self.key_id, "reused": self.reused}


def min_onnxruntime(opset: dict[str, int]) -> str:
    core_opset = opset.get("", opset.get("ai.onnx", 0))
    for highest, version in _MIN_ORT:
        if core_opset <= highest:
            return version
    return _MIN_ORT[-1][1]


def _specs(mv: ModelVersion, columns: set[str]) -> list[FeatureSpec]:
    return [FeatureSpec(s.name, "categorical" if is_categorical(s.datatype) else "numeric",
                        float32=s.datatype == "FP32")
            for s in mv.inputs if s.name in columns]


def _predict(session: Any, mv: ModelVersion, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    names = [o.name for o in mv.outputs]
    wanted = "label" if mv.task == "classification" and "label" in names else names[0]
    return np.asarray(session.run([wanted], frame_feeds(mv.inputs, frame))[0]).ravel()


def _sample(catalog: Catalog, mv: ModelVersion) -> dict[str, np.ndarray[Any, Any]] | None:
    """The arrays given with ``model import --sample``, if any."""
    canary = mv.source.get("canary") or {}
    if canary.get("from") != "sample":
        return None
    return tensor_inputs.from_npz(catalog.objects.require(canary["object"]).read_bytes())


def _imported_baseline(catalog: Catalog, mv: ModelVersion, session: Any) -> dict[str, Any]:
    """No training data: no per-column bins; the prediction's over the sample, if given."""
    sample = _sample(catalog, mv)
    if sample is None:
        return {"rows": 0, "features": [], "prediction": None}
    wanted = mv.outputs[0].name
    (values,) = session.run([wanted], sample)
    values = np.asarray(values)
    rows = len(next(iter(sample.values())))
    if values.dtype.kind not in "fiu" or values.size != rows:
        return {"rows": 0, "features": [], "prediction": None}  # not one number per row
    with catalog.cursor() as cur:
        prediction = prediction_baseline(cur, values.ravel(), None)
    return Baseline(rows, [], prediction).to_dict()


def _baseline(catalog: Catalog, mv: ModelVersion, session: Any) -> dict[str, Any]:
    if mv.run is None:  # an imported ONNX file: no training data to compare against
        return _imported_baseline(catalog, mv, session)
    run = get_run(catalog, mv.run)
    dv = resolve_version(catalog, f"{run.dataset}@{run.dataset_version}")
    path = str(version_path(catalog, dv)).replace("'", "''")
    specs = _specs(mv, {c.name for c in dv.columns})
    frame = read_frame(catalog, dv, columns=[s.name for s in mv.inputs])
    if len(frame) > PREDICTION_SAMPLE:
        frame = frame.sample(PREDICTION_SAMPLE, random_state=0)
    labels = [str(v) for v in mv.labels] if mv.task == "classification" and mv.labels else None
    with catalog.cursor() as cur:
        prediction = prediction_baseline(cur, _predict(session, mv, frame), labels)
        return compute_baseline(cur, f"read_parquet('{path}')", specs, rows=dv.rows,
                                prediction=prediction)


def canary_frame(catalog: Catalog, mv: ModelVersion) -> pd.DataFrame:
    if mv.run is None:
        return pd.DataFrame({s.name: ["" if is_categorical(s.datatype) else 0.0] * 4
                             for s in mv.inputs})
    X, _ = holdout_frame(catalog, get_run(catalog, mv.run))
    complete = X.replace("", np.nan).notna().all(axis=1)
    # Complete rows first: JSON has no NaN, and they exercise every input's path.
    return pd.concat([X[complete], X[~complete]]).head(CANARY_ROWS)


def _tensor_canary(catalog: Catalog, mv: ModelVersion, session: Any) -> dict[str, Any]:
    """Canary of an imported model from its sample, or from inputs made to its signature."""
    sample = _sample(catalog, mv)
    arrays = (tensor_inputs.head(sample, mv.inputs) if sample is not None
              else tensor_inputs.generate(mv.inputs))
    names = [o.name for o in mv.outputs]
    results = session.run(names, arrays)
    return {"inputs": tensor_inputs.json_inputs(arrays), "expected": outputs_json(names, results),
            "atol": 1e-4, "label_output": None}


def _canary(catalog: Catalog, mv: ModelVersion, session: Any) -> dict[str, Any]:
    if mv.run is None and (mv.source.get("canary") or tensor_inputs.has_tensor_inputs(mv.inputs)):
        return _tensor_canary(catalog, mv, session)
    frame = canary_frame(catalog, mv)
    names = [o.name for o in mv.outputs]
    results = session.run(names, frame_feeds(mv.inputs, frame))
    label = "label" if mv.task == "classification" and "label" in names else None
    return {"inputs": json_columns(mv.inputs, frame), "expected": outputs_json(names, results),
            "atol": 1e-4, "label_output": label}


def _cached(catalog: Catalog, mv: ModelVersion, key_id: str) -> tuple[str, dict[str, Any]] | None:
    rows = catalog.cursor().execute(
        "SELECT object, baseline FROM bundle WHERE model = ? AND version = ? AND key_id = ?",
        [mv.model, mv.version, key_id]).fetchall()
    if rows and catalog.objects.exists(rows[0][0]):
        return str(rows[0][0]), orjson.loads(rows[0][1])
    return None


def build_bundle(catalog: Catalog, ref: str, out: Path | None = None, *,
                 progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None,
                 challenger: str | None = None,
                 shadow_share: float = DEFAULT_SHADOW_SHARE) -> BuiltBundle:
    """The signed bundle of model version `ref`, stored (and copied to `out` if given).

    The manifest's signature and opsets are read from the graph by the protocol, exactly
    as the agent will read them. With `challenger` (another version of the same model,
    same inputs), the bundle also carries it for the agent to run in shadow on
    `shadow_share` of the requests; such bundles are not the version's cached bundle."""
    mv = resolve_model(catalog, ref)
    key = signing_key(catalog)
    key_id = key_fingerprint(key)
    shadow = _challenger(catalog, mv, challenger, shadow_share)
    cached = None if shadow is not None else _cached(catalog, mv, key_id)
    if cached is not None:
        sha, baseline = cached
        return _deliver(catalog, mv, sha, key_id, baseline, out, reused=True)
    report(progress, "bundle", 0, 3)
    model_bytes = catalog.objects.require(mv.onnx_object).read_bytes()
    session = load_session(model_bytes, mv.ref)
    baseline = _baseline(catalog, mv, session)
    check(cancel, "bundle build")
    report(progress, "bundle", 1, 3)
    canary = _canary(catalog, mv, session)
    report(progress, "bundle", 2, 3)
    with catalog.objects.temp_path(".outpost") as tmp:
        write_bundle(
            tmp, model=mv.model, version=mv.version, model_bytes=model_bytes,
            baseline=baseline, canary=canary, key=key, task=mv.task,
            labels=[v if isinstance(v, int) else str(v) for v in mv.labels] if mv.labels
            else None, min_onnxruntime=min_onnxruntime(mv.opset),
            built_by=f"outpost {package_version('outpost')}", challenger=shadow)
        sha, _ = catalog.objects.adopt(tmp)
    if shadow is not None:
        report(progress, "bundle", 3, 3)
        return _deliver(catalog, mv, sha, key_id, baseline, out, reused=False)
    with catalog.transaction() as cur:
        cur.execute("INSERT OR REPLACE INTO bundle (model, version, object, key_id, baseline) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [mv.model, mv.version, sha, key_id, orjson.dumps(baseline).decode()])
        record_event(cur, "bundle_build", model=mv.model, version=mv.version, sha256=sha,
                     detail={"key_id": key_id, "onnx": mv.onnx_object})
    report(progress, "bundle", 3, 3)
    return _deliver(catalog, mv, sha, key_id, baseline, out, reused=False)


def _challenger(catalog: Catalog, mv: ModelVersion, ref: str | None, share: float
                ) -> tuple[int, bytes, float] | None:
    """(version, ONNX bytes, share) of the challenger, or None; bad input is refused."""
    if ref is None:
        return None
    if not 0 < share <= 1:
        raise InvalidInput(f"--shadow-share {share:g} must be in (0, 1]")
    other = resolve_model(catalog, ref)
    if other.model != mv.model:
        raise InvalidInput(f"challenger {other.ref} is not a version of {mv.model}")
    if other.version == mv.version:
        raise InvalidInput(f"challenger {other.ref} is the champion itself")
    data = catalog.objects.require(other.onnx_object).read_bytes()
    try:
        check_challenger(inspect_model(
            catalog.objects.require(mv.onnx_object).read_bytes(), check_opset=False).inputs,
            inspect_model(data, check_opset=False).inputs)
    except ModelInvalid as exc:
        raise InvalidInput(f"challenger {other.ref} refused: {exc}") from exc
    return other.version, data, float(share)


def _deliver(catalog: Catalog, mv: ModelVersion, sha: str, key_id: str,
             baseline: dict[str, Any], out: Path | None, *, reused: bool) -> BuiltBundle:
    path = catalog.objects.require(sha)
    if out is not None:
        out = Path(out)
        if out.is_dir():
            out = out / f"{mv.model}-{mv.version}.outpost"
        try:
            tmp = out.with_name(f".{out.name}.tmp")
            shutil.copyfile(path, tmp)
            tmp.replace(out)
        except OSError as exc:
            raise StorageError(f"cannot write bundle to {out}: {exc.strerror}") from exc
        path = out
    return BuiltBundle(mv.model, mv.version, path, sha, key_id, baseline, reused)
