"""Registering a model version: from a run (export + parity) or from an external ONNX file."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import onnx
import orjson
import pandas as pd
from sklearn.pipeline import Pipeline

from core.audit import record_event
from core.catalog import Catalog
from core.errors import InvalidInput
from core.progress import CancelToken, ProgressFn, check, report
from core.registry.models import ModelVersion, model_exists, resolve_model, validate_model_name
from core.registry.onnx_export import Precision, export_pipeline
from core.registry.parity import check_parity
from core.registry.signature import TensorSig, graph_signature, opset_of
from core.training.features import Feature
from core.training.holdout import holdout_frame
from core.training.pipeline import single_threaded
from core.training.runs import get_run, load_model, now


@dataclass
class Exported:
    model: onnx.ModelProto
    data: bytes
    inputs: list[TensorSig]
    parity: dict[str, Any]


def _export_checked(pipeline: Pipeline, features: list[Feature], task: str, X: pd.DataFrame,
                    precision: Precision) -> Exported:
    model = export_pipeline(pipeline, features, task, precision)
    data = model.SerializeToString()
    inputs, _ = graph_signature(model)
    parity = check_parity(data, inputs, pipeline, X, task)
    return Exported(model, data, inputs, {**parity, "precision": precision})


def export_with_parity(pipeline: Pipeline, features: list[Feature], task: str,
                       X: pd.DataFrame) -> Exported:
    """float32 inputs first; if parity fails, float64 where skl2onnx and onnxruntime allow it.

    Which one was kept is recorded as ``parity["precision"]``; a float64 attempt that
    could not be made or did not help is recorded as ``parity["float64"]``.
    """
    single = _export_checked(pipeline, features, task, X, "float32")
    if single.parity["passed"]:
        return single
    try:
        double = _export_checked(pipeline, features, task, X, "float64")
    except InvalidInput as exc:
        single.parity["float64"] = f"not available: {exc}"
        return single
    if double.parity["passed"]:
        double.parity["float32"] = {k: single.parity[k] for k in
                                    ("label_agreement", "max_abs_diff", "passed")}
        return double
    single.parity["float64"] = {k: double.parity[k] for k in
                                ("label_agreement", "max_abs_diff", "passed")}
    return single


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def store_version(catalog: Catalog, name: str, data: bytes, *, run: str | None,
                  source: dict[str, Any], task: str | None, labels: list[Any] | None,
                  parity: dict[str, Any], flagged: bool, model: onnx.ModelProto) -> ModelVersion:
    """Put the ONNX object and insert version N+1 of `name` (creating the model) atomically."""
    inputs, outputs = graph_signature(model)
    sha, created = catalog.objects.put_bytes(data)
    try:
        with catalog.transaction() as cur:
            stamp = now()
            if not model_exists(cur, name):
                cur.execute("INSERT INTO model (name, created_at) VALUES (?, ?)", [name, stamp])
            row = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM model_version "
                              "WHERE model = ?", [name]).fetchone()
            version = int(row[0]) if row else 1
            cur.execute(
                "INSERT INTO model_version (model, version, run, source, onnx_object, onnx_bytes, "
                "inputs, outputs, opset, task, labels, parity, flagged, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [name, version, run, _json(source), sha, len(data),
                 _json([s.to_dict() for s in inputs]), _json([s.to_dict() for s in outputs]),
                 _json(opset_of(model)), task, None if labels is None else _json(labels),
                 _json(parity), flagged, stamp])
            record_event(cur, "register", model=name, version=version, sha256=sha,
                         detail={"source": source, "parity": parity, "flagged": flagged})
    except BaseException:
        if created:
            catalog.objects.discard(sha)
        raise
    return resolve_model(catalog, f"{name}@{version}")


def register_model(catalog: Catalog, run_id: str, name: str, *,
                   progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> ModelVersion:
    """Export a run's pipeline to ONNX, check parity on its holdout, store version N+1."""
    validate_model_name(name)
    run = get_run(catalog, run_id)
    pipeline = load_model(catalog, run)
    report(progress, "registering", 0, 3)
    X, _ = holdout_frame(catalog, run)
    check(cancel, "registration")
    report(progress, "registering", 1, 3)
    with single_threaded():
        exported = export_with_parity(pipeline, run.feature_list, run.task, X)
    check(cancel, "registration")
    report(progress, "registering", 2, 3)
    version = store_version(
        catalog, name, exported.data, run=run.id,
        source={"kind": "run", "run": run.id, "algo": run.algo,
                "dataset": f"{run.dataset}@{run.dataset_version}"},
        task=run.task, labels=run.labels, parity=exported.parity,
        flagged=not exported.parity["passed"], model=exported.model)
    report(progress, "registering", 3, 3)
    return version
