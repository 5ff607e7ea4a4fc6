"""Signatures of ONNX graphs in Open Inference Protocol terms, and feeding them from a table.

Only type-checking imports of onnx and numpy here: every CLI start loads this module through
the model commands, and reading a stored signature needs no onnx.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import pandas as pd

# onnx.TensorProto.DataType numbers (fixed by the ONNX spec) → OIP datatype names.
_OIP_TYPES: dict[int, str] = {
    1: "FP32", 11: "FP64", 10: "FP16", 16: "BF16", 3: "INT8", 5: "INT16", 6: "INT32",
    7: "INT64", 2: "UINT8", 4: "UINT16", 12: "UINT32", 13: "UINT64", 9: "BOOL", 8: "BYTES",
}
# numpy dtypes by name, so that reading a signature needs no numpy.
_NUMPY_TYPES = {"FP32": "float32", "FP64": "float64", "INT64": "int64", "INT32": "int32",
                "BOOL": "bool", "BYTES": "object"}


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
