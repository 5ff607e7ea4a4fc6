"""What the agent checks in model.onnx before onnxruntime sees it, and what it can run."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from edge_agent.contract.errors import ModelInvalid
from edge_agent.contract.manifest import TensorSpec
from edge_agent.contract.onnx_wire import (
    ELEM_TO_OIP,
    ValueInfo,
    WireError,
    identity_model,
    read_model,
)

_ML_DOMAIN = "ai.onnx.ml"


@dataclass(frozen=True)
class ModelInfo:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int]
    ir_version: int


@functools.cache
def _loads(domain: str, version: int) -> bool:
    """Does this onnxruntime load a model of that opset?"""
    opsets = {"": version} if domain == "" else {"": 13, domain: version}
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(identity_model(opsets), opts, providers=["CPUExecutionProvider"])
    except Exception:  # any load failure means "not supported"
        return False
    return True


_PROBED = {"": 64, _ML_DOMAIN: 16}  # the domains whose opsets are checked, search bounds


@functools.cache
def supported_opsets() -> dict[str, int]:
    """Highest opset per domain this onnxruntime loads, found by trying (onnxruntime
    does not publish it)."""
    out: dict[str, int] = {}
    for domain, hi in _PROBED.items():
        lo = 1
        while lo < hi:  # largest version that loads; support is contiguous from 1
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _loads(domain, mid) else (lo, mid - 1)
        out[domain] = lo
    return out


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_runtime_version(min_onnxruntime: str) -> None:
    if _version_tuple(ort.__version__) < _version_tuple(min_onnxruntime):
        raise ModelInvalid(
            f"model needs onnxruntime >= {min_onnxruntime}, this agent has {ort.__version__}"
        )


def _specs(values: list[ValueInfo], what: str) -> list[TensorSpec]:
    out = []
    for v in values:
        if not v.is_tensor:
            raise ModelInvalid(
                f"model {what} {v.name!r} is not a tensor (export classifiers with zipmap=False)"
            )
        dtype = ELEM_TO_OIP.get(v.elem_type)
        if dtype is None:
            raise ModelInvalid(f"model {what} {v.name!r} has an unsupported element type")
        out.append(TensorSpec(v.name, dtype, [d if d >= 0 else -1 for d in v.dims]))
    return out


def inspect_model(data: bytes, *, check_opset: bool = True) -> ModelInfo:
    """Parse model.onnx; refuse external data and opsets newer than this runtime runs."""
    try:
        model = read_model(data)
    except WireError as exc:
        raise ModelInvalid("model.onnx is not a valid ONNX model (corrupt protobuf)") from exc
    graph = model.graph
    if graph is None or not graph.outputs:
        raise ModelInvalid("model.onnx is not a valid ONNX model (no graph)")
    if model.external_data:
        raise ModelInvalid("model.onnx references external data files; refused")
    opset = model.opset
    if check_opset:
        for domain, version in opset.items():
            if domain not in _PROBED or _loads(domain, version):
                continue  # one probe per domain: the search for the limits costs ~1.4 MB
            limit = supported_opsets()[domain]  # resident (onnxruntime code it touches)
            if version > limit:
                raise ModelInvalid(
                    f"model.onnx needs opset {domain or 'ai.onnx'} {version}; this onnxruntime "
                    f"({ort.__version__}) supports up to {limit}"
                )
    inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    return ModelInfo(
        inputs=_specs(inputs, "input"),
        outputs=_specs(graph.outputs, "output"),
        opset=opset,
        ir_version=model.ir_version,
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
