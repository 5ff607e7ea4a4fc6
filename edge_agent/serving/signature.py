"""What a loaded model accepts, and binding decoded tensors to its inputs.

The signature comes from the onnxruntime session (the graph is the authority,
not the manifest). Whether an input may carry NaN comes from the graph: only
inputs that reach an imputer, an IsNaN or a tree ensemble trained with missing
values can take them; everything else would turn NaN into a silent garbage
prediction, so it is refused at the door.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.contract.onnx_wire import Node, read_model
from edge_agent.serving.oip import InferInput
from edge_agent.serving.tensors import InferRequestInvalid

ORT_TYPES = {
    "tensor(bool)": "BOOL", "tensor(int8)": "INT8", "tensor(int16)": "INT16",
    "tensor(int32)": "INT32", "tensor(int64)": "INT64", "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
_NAN_HANDLERS = {"Imputer", "IsNaN"}
_TREES = {"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 where the graph leaves the dimension open
    takes_nan: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {t.name: t for t in self.inputs})
        # Per input, for bind_inputs: the spec, whether the first dimension is the open
        # batch dimension, and the rest of the shape when that is fixed (None: open too).
        object.__setattr__(self, "_bind", {t.name: (t, t.shape[:1] == (-1,), _fixed_tail(t))
                                           for t in self.inputs})

    def input(self, name: str) -> TensorInfo | None:
        by_name: dict[str, TensorInfo] = self._by_name  # type: ignore[attr-defined]
        return by_name.get(name)


def _fixed_tail(spec: TensorInfo) -> tuple[int, ...] | None:
    tail = spec.shape[1:]
    return tail if spec.shape[:1] == (-1,) and -1 not in tail else None


def _dims(shape: list[Any]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


def _info(arg: Any, nan_inputs: frozenset[str]) -> TensorInfo:
    return TensorInfo(arg.name, ORT_TYPES.get(arg.type, arg.type), _dims(list(arg.shape)),
                      arg.name in nan_inputs)


def signature_of(session: Any, model_path: Path | None) -> Signature:
    """The signature of an onnxruntime session; NaN tolerance read from model_path's graph."""
    nan_inputs = nan_tolerant_inputs(model_path) if model_path is not None else frozenset()
    return Signature(tuple(_info(a, nan_inputs) for a in session.get_inputs()),
                     tuple(_info(a, frozenset()) for a in session.get_outputs()))


def _handles_nan(node: Node) -> bool:
    if node.op_type in _NAN_HANDLERS:
        return True
    if node.op_type in _TREES:
        return any(node.ints.get("nodes_missing_value_tracks_true", ()))
    return False


def nan_tolerant_inputs(model_path: Path) -> frozenset[str]:
    """Graph inputs from which some node that handles missing values can be reached."""
    graph = read_model(model_path.read_bytes()).graph
    if graph is None:
        return frozenset()
    consumers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)
    tolerant: set[str] = set()
    for graph_input in graph.inputs:
        seen: set[str] = {graph_input.name}
        queue = deque([graph_input.name])
        while queue and graph_input.name not in tolerant:
            for node in consumers.get(queue.popleft(), []):
                if _handles_nan(node):
                    tolerant.add(graph_input.name)
                    break
                for out in node.outputs:
                    if out not in seen:
                        seen.add(out)
                        queue.append(out)
    return frozenset(tolerant)


def _check_values(spec: TensorInfo, arr: np.ndarray[Any, Any]) -> None:
    """Called for inputs that hold NaN or Inf."""
    if np.isinf(arr).any():
        raise InferRequestInvalid(f"input {spec.name}: contains Inf (or a number too large "
                                  f"for {spec.datatype}), which the model cannot take")
    if not spec.takes_nan:
        raise InferRequestInvalid(f"input {spec.name}: contains NaN, and the model has no "
                                  "missing-value handling for it")


def _check_shape(spec: TensorInfo, shape: tuple[int, ...]) -> None:
    if len(shape) == len(spec.shape):
        for want, got in zip(spec.shape, shape, strict=True):
            if want != got and want != -1:
                break
        else:
            return
    expected = ["-1" if d < 0 else str(d) for d in spec.shape]
    raise InferRequestInvalid(f"input {spec.name}: shape {list(shape)} does not fit the "
                              f"model's [{', '.join(expected)}]")


def bind_inputs(signature: Signature, inputs: list[InferInput]) -> tuple[dict[str, Any], int]:
    """The feed dict for session.run and the batch size, or InferRequestInvalid."""
    table: dict[str, tuple[TensorInfo, bool, tuple[int, ...] | None]] = \
        signature._bind  # type: ignore[attr-defined]
    feeds: dict[str, Any] = {}
    batch: set[int] = set()
    for tensor in inputs:
        name, shape = tensor.name, tensor.shape
        entry = table.get(name)
        if entry is None:
            raise InferRequestInvalid(f"input {name!r} is not an input of this model "
                                      f"(inputs: {[t.name for t in signature.inputs]})")
        spec, open_batch, tail = entry
        if name in feeds:
            raise InferRequestInvalid(f"input {name!r} is given twice")
        if tensor.datatype != spec.datatype:
            raise InferRequestInvalid(f"input {name}: datatype {tensor.datatype} does not "
                                      f"match the model's {spec.datatype}")
        # The common case, an open batch dimension and a fixed rest, in one comparison.
        if tail is None or len(shape) != len(spec.shape) or shape[1:] != tail:
            _check_shape(spec, shape)
        if not tensor.finite:
            _check_values(spec, tensor.data)
        feeds[name] = tensor.data
        if open_batch:
            batch.add(shape[0])
    if len(feeds) != len(table):
        missing = [t.name for t in signature.inputs if t.name not in feeds]
        raise InferRequestInvalid(f"missing inputs: {missing}")
    if len(batch) > 1:
        raise InferRequestInvalid(f"inputs disagree on the batch size: {sorted(batch)}")
    return feeds, batch.pop() if batch else 1
