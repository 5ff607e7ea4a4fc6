"""Captured rows as a dataset: ``MODEL_captured``, one version per state of the captures.

Every row an agent captured (its inputs, the answer, its prediction id and why it was
kept) with provenance columns (``capture_agent``, ``capture_model_version``,
``capture_reason``, ``captured_at``, ``prediction_id``) and the current label, if one
arrived, in a column named like the model's training target. Its lineage parent is the
model's training data. Versions are content-addressed, so refreshing without anything new
returns the version already stored.
"""
from __future__ import annotations

import json
from typing import Any

import duckdb

from core.catalog import Catalog
from core.datasets import duck
from core.datasets.records import ImportResult
from core.datasets.storing import store_version
from core.feedback.labels import LABELS
from core.progress import CancelToken, ProgressFn

SUFFIX = "_captured"
PROVENANCE = ("capture_agent", "capture_model_version", "capture_reason", "captured_at",
              "prediction_id")
_DUCK_TYPE = {"BYTES": "VARCHAR", "BOOL": "BOOLEAN", "FP16": "DOUBLE", "FP32": "DOUBLE",
              "FP64": "DOUBLE"}


def captured_name(model: str) -> str:
    return f"{model}{SUFFIX}"


def _origin(cur: duckdb.DuckDBPyConnection, model: str
            ) -> tuple[list[dict[str, Any]], str, str, tuple[str, str] | None]:
    """(model inputs, target column, target type, training dataset version) of the latest
    version of `model`."""
    row = cur.execute(
        "SELECT mv.inputs, r.target, r.dataset, r.dataset_version, dv.columns "
        "FROM model_version mv LEFT JOIN run r ON r.id = mv.run "
        "LEFT JOIN dataset_version dv ON dv.dataset = r.dataset AND dv.version = "
        "r.dataset_version WHERE mv.model = ? ORDER BY mv.version DESC LIMIT 1",
        [model]).fetchone()
    if row is None:
        return [], "label", "VARCHAR", None
    inputs, target, dataset, version, columns = row
    types = {c["name"]: c["type"] for c in json.loads(columns)} if columns else {}
    return (json.loads(inputs), target or "label", types.get(target, "VARCHAR"),
            (dataset, version) if dataset else None)


def _input_columns(inputs: list[dict[str, Any]]) -> list[str]:
    out = []
    for spec in inputs:
        name = str(spec["name"])
        path = duck.literal('$."' + name.replace('"', '\\"') + '"')
        kind = _DUCK_TYPE.get(str(spec.get("datatype")), "BIGINT")
        out.append(f"TRY_CAST(json_extract_string(c.inputs, {path}) AS {kind}) "
                   f"AS {duck.ident(name)}")
    return out


def refresh_captured(catalog: Catalog, model: str, *, progress: ProgressFn | None = None,
                     cancel: CancelToken | None = None) -> ImportResult | None:
    """Store the model's captured rows (joined with labels) as a version of MODEL_captured;
    None when no agent has captured anything for it."""
    cur = catalog.cursor()
    try:
        ((count,),) = cur.execute("SELECT count(*) FROM telemetry_capture WHERE model = ?",
                                  [model]).fetchall()
        if not count:
            return None
        inputs, target, target_type, parent = _origin(cur, model)
        labels = LABELS.replace("$model", duck.literal(model))
        select = ", ".join([
            *_input_columns(inputs),
            f"TRY_CAST(c.prediction AS {target_type}) AS prediction",
            f"TRY_CAST(l.label AS {target_type}) AS {duck.ident(target)}",
            "c.agent AS capture_agent", "c.version AS capture_model_version",
            "c.reason AS capture_reason", "to_timestamp(c.ts) AS captured_at",
            "c.id AS prediction_id"])
        query = (f"SELECT {select} FROM telemetry_capture c LEFT JOIN ({labels}) l "
                 f"USING (id) WHERE c.model = {duck.literal(model)} ORDER BY c.ts, c.id")
        with catalog.objects.temp_path(".parquet") as parquet:
            duck.run(cur, f"COPY ({query}) TO {duck.literal(parquet)} (FORMAT parquet)",
                     "captured rows", progress, cancel)
            ((labelled,),) = cur.execute(
                f"SELECT count({duck.ident(target)}) FROM read_parquet("
                f"{duck.literal(parquet)})").fetchall()
            source = {"kind": "capture", "model": model, "rows": int(count),
                      "labelled": int(labelled), "target": target}
            return store_version(catalog, cur, captured_name(model), parquet, source, parent,
                                 empty="no captured rows", progress=progress, cancel=cancel)
    finally:
        cur.close()


def refresh_all_captured(catalog: Catalog) -> list[ImportResult]:
    """`refresh_captured` for every model some agent captured rows for."""
    models = [str(m) for (m,) in catalog.cursor().execute(
        "SELECT DISTINCT model FROM telemetry_capture ORDER BY model").fetchall()]
    return [r for m in models if (r := refresh_captured(catalog, m)) is not None]


def captured_summary(result: ImportResult) -> dict[str, Any]:
    """What commands report about a MODEL_captured version they brought up to date."""
    return {"dataset": result.name, "version": result.version, "rows": result.rows,
            "new": result.new}
