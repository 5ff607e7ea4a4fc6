"""`POST /v1/models/{name}/predict`: {"records": [{column: value}]} onto per-column inputs.

Desktop-trained models take one ONNX input per raw column, shaped [-1, 1]: a
record maps onto them by name. A missing category becomes "" (what the
training pipeline imputes); a missing number becomes NaN, but only for inputs
whose graph handles missing values. Unknown columns are refused, so a typo in
a column name is an error, not a silent NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from edge_agent.serving.signature import Signature, TensorInfo
from edge_agent.serving.tensors import InferRequestInvalid, json_arrays

_MISSING: Any = None
_STRING_KINDS = frozenset({str, type(None)})
_SCALAR_KINDS = frozenset({int, float, bool, type(None)})


def _fail(message: str) -> InferRequestInvalid:
    return InferRequestInvalid(message)


def parse_records(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _fail(f"request is not valid JSON: {exc}") from None
    records = doc.get("records") if type(doc) is dict else None
    if type(records) is not list or not records:
        raise _fail('body must be {"records": [{column: value, ...}, ...]} with >= 1 record')
    if not all(type(r) is dict for r in records):
        raise _fail("every record must be a JSON object")
    return records


def _values(spec: TensorInfo, records: list[dict[str, Any]]) -> list[Any]:
    name = spec.name
    values = [r.get(name, _MISSING) for r in records]
    kinds = set(map(type, values))
    if spec.datatype == "BYTES":
        if not kinds <= _STRING_KINDS:
            raise _fail(f"column {spec.name}: every value must be a string (or null)")
        return ["" if v is None else v for v in values]
    if not kinds <= _SCALAR_KINDS:
        raise _fail(f"column {spec.name}: every value must be one number, true/false or null")
    if None in values:
        if spec.datatype not in ("FP16", "FP32", "FP64") or not spec.takes_nan:
            raise _fail(f"column {spec.name} is missing in a record, and the model cannot "
                        "take a missing value there")
        values = [np.nan if v is None else v for v in values]
    if spec.datatype != "BOOL" and bool in kinds:
        raise _fail(f"column {spec.name}: true/false where a {spec.datatype} is expected")
    return values


@dataclass(frozen=True, slots=True)
class _Columns:
    """What records_to_feeds needs from a signature, worked out once per signature."""

    signature: Signature
    known: frozenset[str]
    refusal: str | None  # why this model cannot take records at all
    # per datatype: its inputs, their labels in errors, and the shape a column becomes
    groups: tuple[tuple[str, tuple[TensorInfo, ...], list[str], tuple[bool, ...]], ...]


_COLUMNS: dict[int, _Columns] = {}


def _columns(signature: Signature) -> _Columns:
    cached = _COLUMNS.get(id(signature))
    if cached is not None and cached.signature is signature:
        return cached
    refusal = next((f"model input {s.name} has shape {list(s.shape)}, not one value per row: "
                    "use the /v2 infer endpoint" for s in signature.inputs
                    if s.shape not in ((-1,), (-1, 1))), None)
    by_type: dict[str, list[TensorInfo]] = {}
    for spec in signature.inputs:
        by_type.setdefault(spec.datatype, []).append(spec)
    groups = tuple((datatype, tuple(specs), [f"column {s.name}" for s in specs],
                    tuple(len(s.shape) == 2 for s in specs))
                   for datatype, specs in by_type.items())
    if len(_COLUMNS) >= 64:  # signatures of replaced model versions
        _COLUMNS.clear()
    columns = _COLUMNS[id(signature)] = _Columns(
        signature, frozenset(t.name for t in signature.inputs), refusal, groups)
    return columns


def records_to_feeds(signature: Signature, records: list[dict[str, Any]]
                     ) -> dict[str, np.ndarray[Any, Any]]:
    """One array per model input, from the records' columns of the same names."""
    plan = _columns(signature)
    if plan.refusal is not None:
        raise _fail(plan.refusal)
    known = plan.known
    for record in records:
        if not known.issuperset(record):
            unknown = record.keys() - known
            raise _fail(f"unknown columns {sorted(unknown)}; the model takes {sorted(known)}")
    feeds = {}
    rows = len(records)
    with np.errstate(over="ignore"):
        for datatype, specs, labels, column in plan.groups:
            decoded = json_arrays([_values(s, records) for s in specs], datatype, labels)
            for spec, (arr, finite), two_d in zip(specs, decoded, column, strict=True):
                if not finite and (np.isinf(arr).any() or not spec.takes_nan):
                    raise _fail(f"column {spec.name}: a value is not finite")
                feeds[spec.name] = arr.reshape(rows, 1) if two_d else arr.reshape(rows)
    return feeds


def encode_predictions(model: str, version: int, rows: int,
                       outputs: list[tuple[str, np.ndarray[Any, Any]]],
                       ids: list[str] | None = None) -> bytes:
    """{"model", "version", "predictions": first output per row, "outputs": {name: rows},
    "ids": one prediction id per row}."""
    def plain(arr: np.ndarray[Any, Any]) -> Any:
        arr = arr.reshape(rows, -1) if arr.size else arr
        arr = arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr
        return arr.tolist()

    doc = {"model": model, "version": version,
           "predictions": plain(outputs[0][1]) if outputs else [],
           "outputs": {name: plain(arr) for name, arr in outputs}}
    if ids is not None:
        doc["ids"] = ids
    return orjson.dumps(doc)
