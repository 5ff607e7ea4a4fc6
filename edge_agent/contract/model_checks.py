"""What the agent checks in model.onnx before onnxruntime sees it, and what it can run."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnx import helper

from edge_agent.contract.errors import ModelInvalid
from edge_agent.contract.manifest import TensorSpec

ONNX_TO_OIP: dict[int, str] = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.STRING: "BYTES",
}
_ML_DOMAIN = "ai.onnx.ml"


@dataclass(frozen=True)
class ModelInfo:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int]
    ir_version: int


def _probe(domain: str, version: int) -> bool:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    imports = [helper.make_opsetid("", version if domain == "" else 13)]
    if domain:
        imports.append(helper.make_opsetid(domain, version))
    model = helper.make_model(graph, opset_imports=imports, ir_version=8)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception:  # any load failure means "not supported"
        return False
    return True


@functools.cache
def supported_opsets() -> dict[str, int]:
    """Highest opset per domain this onnxruntime loads, found by trying (onnxruntime
    does not publish it)."""
    out: dict[str, int] = {}
    for domain, hi in (("", 64), (_ML_DOMAIN, 16)):
        lo = 1
        while lo < hi:  # largest version that loads; support is contiguous from 1
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _probe(domain, mid) else (lo, mid - 1)
        out[domain] = lo
    return out


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_runtime_version(min_onnxruntime: str) -> None:
    if _version_tuple(ort.__version__) < _version_tuple(min_onnxruntime):
        raise ModelInvalid(
            f"model needs onnxruntime >= {min_onnxruntime}, this agent has {ort.__version__}"
        )


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        for sparse in [attr.sparse_tensor, *attr.sparse_tensors]:
            yield sparse.values
            yield sparse.indices
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for sub in attr.graphs:
            yield from _graph_tensors(sub)


def _uses_external_data(model: onnx.ModelProto) -> bool:
    tensors = [*_graph_tensors(model.graph)]
    for fn in model.functions:
        for node in fn.node:
            tensors.extend(_node_tensors(node))
    return any(t.data_location == onnx.TensorProto.EXTERNAL or t.external_data for t in tensors)


def _specs(values: list[onnx.ValueInfoProto], what: str) -> list[TensorSpec]:
    out = []
    for v in values:
        if not v.type.HasField("tensor_type"):
            raise ModelInvalid(
                f"model {what} {v.name!r} is not a tensor (export classifiers with zipmap=False)"
            )
        tt = v.type.tensor_type
        dtype = ONNX_TO_OIP.get(tt.elem_type)
        if dtype is None:
            raise ModelInvalid(f"model {what} {v.name!r} has an unsupported element type")
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        out.append(TensorSpec(v.name, dtype, shape))
    return out


def inspect_model(data: bytes, *, check_opset: bool = True) -> ModelInfo:
    """Parse model.onnx; refuse external data and opsets newer than this runtime runs."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelInvalid("model.onnx is not a valid ONNX model (corrupt protobuf)") from exc
    if not model.HasField("graph") or not model.graph.output:
        raise ModelInvalid("model.onnx is not a valid ONNX model (no graph)")
    if _uses_external_data(model):
        raise ModelInvalid("model.onnx references external data files; refused")
    opset = {
        ("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in model.opset_import
    }
    if check_opset:
        supported = supported_opsets()
        for domain, version in opset.items():
            limit = supported.get(domain)
            if limit is not None and version > limit:
                raise ModelInvalid(
                    f"model.onnx needs opset {domain or 'ai.onnx'} {version}; this onnxruntime "
                    f"({ort.__version__}) supports up to {limit}"
                )
    init_names = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in init_names]
    return ModelInfo(
        inputs=_specs(inputs, "input"),
        outputs=_specs(list(model.graph.output), "output"),
        opset=opset,
        ir_version=int(model.ir_version),
    )


def check_challenger(champion: list[TensorSpec], challenger: list[TensorSpec]) -> None:
    """A challenger runs on the champion's feeds: its inputs must be the same tensors."""
    def sig(specs: list[TensorSpec]) -> list[tuple[str, str, list[int]]]:
        return [(t.name, t.datatype, list(t.shape)) for t in specs]

    if sig(champion) != sig(challenger):
        ours = ", ".join(f"{n}:{d}{s}" for n, d, s in sig(champion))
        theirs = ", ".join(f"{n}:{d}{s}" for n, d, s in sig(challenger))
        raise ModelInvalid(f"challenger inputs ({theirs}) differ from the champion's ({ours})")


def load_session(model: bytes | Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime session from bytes (nothing is resolved on disk), or from a file
    whose graph inspect_model found free of external data (onnxruntime then reads the
    file itself: no copy of it as Python bytes on top)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        source = str(model) if isinstance(model, Path) else model
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several untyped errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelInvalid(f"onnxruntime cannot load model.onnx: {first[:300]}") from exc
