"""Pipeline → ONNX with one input per raw column, and signatures read from any graph."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
from sklearn.pipeline import Pipeline

from core.errors import InvalidInput
from core.registry.converters import install_converter_fixes
from core.training.pipeline import Feature

Precision = Literal["float32", "float64"]
# Pinned so that a device's onnxruntime (>= 1.14) can load every exported model.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
CLASSIFIER_OUTPUTS = ("label", "probabilities")
REGRESSOR_OUTPUTS = ("variable",)

_OIP_TYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.FLOAT16: "FP16", onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.INT8: "INT8", onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32", onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.BOOL: "BOOL", onnx.TensorProto.STRING: "BYTES",
}
_NUMPY_TYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32,
                "BOOL": np.bool_, "BYTES": object}


@dataclass(frozen=True)
class TensorSig:
    """A graph input or output: OIP datatype and shape (-1 for a free dimension)."""

    name: str
    datatype: str
    shape: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSig:
        return cls(data["name"], data["datatype"], [int(d) for d in data["shape"]])


def _tensor_sig(value: onnx.ValueInfoProto) -> TensorSig:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSig(value.name, kind.upper() if kind else "UNKNOWN", [])
    tensor = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return TensorSig(value.name, _OIP_TYPES.get(tensor.elem_type, "UNKNOWN"), shape)


def graph_signature(model: onnx.ModelProto) -> tuple[list[TensorSig], list[TensorSig]]:
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_tensor_sig(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_tensor_sig(v) for v in model.graph.output]


def opset_of(model: onnx.ModelProto) -> dict[str, int]:
    return {(op.domain or "ai.onnx"): int(op.version) for op in model.opset_import}


def _rename(model: onnx.ModelProto, values: Sequence[onnx.ValueInfoProto],
            names: Sequence[str]) -> None:
    for value, wanted in zip(values, names, strict=True):
        old = value.name
        if old == wanted:
            continue
        for node in model.graph.node:
            node.output[:] = [wanted if n == old else n for n in node.output]
            node.input[:] = [wanted if n == old else n for n in node.input]
        value.name = wanted


def _fix_names(model: onnx.ModelProto, features: Sequence[Feature], outputs: Sequence[str]) -> None:
    """Inputs named exactly as the raw columns, outputs with the fixed names the agent expects.

    skl2onnx rewrites names that are not identifiers ("mean radius" → "mean_radius");
    the graph inputs keep the order of the initial types, so position maps them back.
    """
    initializers = {init.name for init in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    taken = {n for node in model.graph.node for n in (*node.input, *node.output)} | initializers
    wanted = [f.name for f in features]
    clashes = (taken - {v.name for v in inputs}) & set(wanted)
    if clashes:
        raise InvalidInput(f"column name {sorted(clashes)[0]!r} clashes with a name inside the "
                           "exported graph; rename the column")
    _rename(model, inputs, wanted)
    _rename(model, model.graph.output, outputs)


def export_pipeline(pipeline: Pipeline, features: Sequence[Feature], task: str,
                    precision: Precision = "float32") -> onnx.ModelProto:
    install_converter_fixes()
    numeric = FloatTensorType if precision == "float32" else DoubleTensorType
    initial_types = [(f.name, numeric([None, 1]) if f.kind == "numeric"
                      else StringTensorType([None, 1])) for f in features]
    estimator = pipeline.steps[-1][1]
    options = {id(estimator): {"zipmap": False}} if task == "classification" else None
    try:
        model = to_onnx(pipeline, initial_types=initial_types, options=options,
                        target_opset=TARGET_OPSET)
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
        first = str(exc).splitlines()[0][:300]
        raise InvalidInput(f"skl2onnx cannot convert this {type(estimator).__name__} "
                           f"pipeline at {precision}: {first}") from exc
    _fix_names(model, features,
               CLASSIFIER_OUTPUTS if task == "classification" else REGRESSOR_OUTPUTS)
    model.doc_string = f"Outpost {type(estimator).__name__} pipeline ({precision} inputs)"
    return model


def onnx_feeds(X: pd.DataFrame, inputs: Sequence[TensorSig]) -> dict[str, np.ndarray]:
    """Column arrays shaped [rows, 1] in each input's datatype (strings as Python str)."""
    feeds = {}
    for sig in inputs:
        if sig.name not in X.columns:
            raise InvalidInput(f"the data has no column {sig.name!r} for the model input")
        dtype = _NUMPY_TYPES.get(sig.datatype)
        if dtype is None:
            raise InvalidInput(f"input {sig.name!r} has datatype {sig.datatype}, which "
                               "Outpost cannot feed from a table")
        feeds[sig.name] = X[[sig.name]].to_numpy(dtype=dtype)
    return feeds
